"""The noisy-neighbour figure, run small: real reads, a real attacker process, real RSS."""

from __future__ import annotations

import asyncio
import os

import pytest

from bench import noisy_neighbour, proc


def test_the_pod_limit_is_read_from_the_deployment() -> None:
    assert noisy_neighbour.pod_memory_limit_bytes() == 512 * 1024**2


def test_tree_rss_counts_this_process() -> None:
    assert proc.tree_rss_bytes(os.getpid()) > 10 * 1024**2


@pytest.mark.timeout(120)
def test_the_figures_come_from_reads_and_an_attack() -> None:
    latency, memory = asyncio.run(noisy_neighbour.measure(seconds=1.5))
    assert latency.details["quiet_reads"] > 10 and latency.details["attacked_reads"] > 0
    assert latency.ours > 0 and latency.baseline > 0
    assert memory.baseline == 512 * 1024**2 / 1e6
    assert memory.ours > 10  # MB: the API process was measured
    assert memory.details["attacker_exit_code"] == 0
