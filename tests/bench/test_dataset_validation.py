"""The dataset validation figure, run small: it must upload through the real API and time it."""

from __future__ import annotations

import pytest

from bench import dataset_validation
from bench.figure import Figure

SMALL_BYTES = 100_000


def test_the_figure_times_real_uploads_against_real_parsing() -> None:
    [figure] = dataset_validation.measure(runs=2, target_bytes=SMALL_BYTES)
    assert isinstance(figure, Figure)
    assert figure.ours > 0 and figure.baseline > 0
    # The answer of the last upload: the API read, checked and counted every line.
    expected = dataset_validation.dataset(SMALL_BYTES)
    assert figure.details["bytes"] == len(expected)
    assert figure.details["examples"] == expected.count(b"\n") > 100
    assert figure.details["parse_s"] > 0
    assert figure.details["best_s"] <= figure.ours


def test_the_dataset_is_valid_jsonl_just_under_its_target_size() -> None:
    raw = dataset_validation.dataset(SMALL_BYTES)
    assert SMALL_BYTES - 1_000 < len(raw) <= SMALL_BYTES
    assert len(dataset_validation.bare_parse(raw)) == raw.count(b"\n")


CHUNK_BYTES = dataset_validation.CHUNK_BYTES


@pytest.mark.parametrize("size", [1, CHUNK_BYTES, 3 * CHUNK_BYTES + 5])
def test_an_upload_is_the_metadata_then_the_content_in_chunks(size: int) -> None:
    content = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    parts = list(dataset_validation.upload_parts(content))
    assert parts[0].WhichOneof("part") == "dataset"
    assert b"".join(part.chunk for part in parts[1:]) == content
    assert max(len(part.chunk) for part in parts[1:]) <= CHUNK_BYTES
