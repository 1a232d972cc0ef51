"""The Generate overhead figures, run small: a real job trained to SUCCEEDED, called both
ways, unary and streamed."""

from __future__ import annotations

import pytest

from bench import generate, generate_stream


@pytest.mark.timeout(180)
async def test_the_figures_time_both_paths_to_the_same_model() -> None:
    p50, p99, first_p50, first_p99, bunching = await generate.measure(calls=20, rounds=1, streams=8)

    assert (p50.baseline, p99.baseline) == (generate.P50_GOAL_MS, generate.P99_BOUND_MS)
    # The direct call took some time, and the platform's path is not free.
    assert p50.details["direct_p50_ms"] > 0
    assert p50.ours > 0
    assert p50.details["calls"] == 20
    # Each chunk was timed from the emulator's stamp: it reached the caller after it was
    # sent, both ways, and the platform's request path (before the upstream is called)
    # makes the first chunk later from the call's start.
    assert first_p50.details["direct_first_p50_ms"] > 0
    assert first_p50.details["ours_first_p50_ms"] > 0
    assert first_p50.details["added_to_first_p50_ms"] > 0
    assert first_p50.details["streams"] == first_p99.details["streams"] == 8
    # Chunks spaced by the emulator's delay are not held back: a middle that buffered the
    # stream would deliver most later chunks a delay or more after they were sent.
    delay_ms = generate_stream.CHUNK_DELAY_S * 1e3
    assert bunching.details["chunk_delay_ms"] == delay_ms
    assert bunching.details["later_added_p50_ms"] < delay_ms / 2
