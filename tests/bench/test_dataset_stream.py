"""The dataset stream figure, run small: a real upload through the API into the emulator."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench import dataset_stream


def test_the_figure_streams_a_real_upload_and_measures_the_api(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATASET_STREAM_MB", "12")
    throughput, memory = asyncio.run(dataset_stream.ameasure())
    assert throughput.ours > 0 and throughput.baseline > 0
    # The API read, checked and counted every example of the file it was sent.
    assert throughput.details["bytes"] > 10_000_000
    assert throughput.details["examples"] > throughput.details["bytes"] / 2000
    assert throughput.details["cpu_s_api"] > 0
    assert memory.details["api_rss_peak_mb"] >= memory.details["api_rss_before_mb"]


def test_the_file_is_jsonl_of_about_1_kb_examples(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    size = dataset_stream.write_dataset(path, 3_000_000)
    lines = path.read_bytes().splitlines()
    assert 2_000_000 < size <= 3_000_000 + 1_100
    assert 900 < size / len(lines) < 1200
    assert dataset_stream.bare_parse_s(path) > 0
