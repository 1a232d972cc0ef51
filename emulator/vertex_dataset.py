"""Reading a tuning job's JSONL training file from the emulated Cloud Storage.

One example a line: ``{"systemInstruction": {"parts": [{"text": …}]}, "contents": [{"role":
"user", "parts": [{"text": …}]}, {"role": "model", "parts": [{"text": …}]}]}``. The file is
read once, when the job is created (a later overwrite changes nothing), and streamed line by
line, so a 1 GB file is never held in memory. Tokens are estimated as characters / 4, rounded
up per example; an example over the base model's token limit is dropped and counted, not fatal.
A file that is missing, not JSONL of such examples, or has no usable example makes the job fail
once its PENDING time is over (as the real service validates the dataset after the create).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from emulator.storage_objects import ObjectStore

CHARS_PER_TOKEN = 4
MAX_EXAMPLES = 1_000_000
MAX_REASONS = 10


class DatasetError(ValueError):
    """The training file cannot be used; the message becomes the job's error message."""


@dataclass(frozen=True)
class DatasetStats:
    """What ``tuningDataStats.supervisedTuningDataStats`` reports.

    Attributes:
        example_count: examples kept for tuning.
        character_count: text characters of the kept examples.
        billable_token_count: estimated tokens of the kept examples.
        dropped_indices: 0-based line indices of the dropped examples.
        dropped_reasons: why (the first few).
    """

    example_count: int
    character_count: int
    billable_token_count: int
    dropped_indices: tuple[int, ...] = ()
    dropped_reasons: tuple[str, ...] = ()


def read_stats(objects: ObjectStore, uri: str, max_example_tokens: int) -> DatasetStats:
    """The statistics of the JSONL file at ``uri``; :class:`DatasetError` if it is unusable."""
    stored = objects.get_uri(uri)
    if stored is None:
        raise DatasetError(f"Failed to read the dataset {uri}: the object does not exist.")
    with objects.open(stored) as body:
        return _stats(uri, _lines(body), max_example_tokens)


def count_examples(objects: ObjectStore, uri: str) -> int:
    """How many examples a (validation) file holds; :class:`DatasetError` if unusable."""
    return read_stats(objects, uri, max_example_tokens=2**62).example_count


def _lines(body: Iterable[bytes]) -> Iterable[tuple[int, bytes]]:
    """The file's non-blank lines with their 0-based indices."""
    return ((index, line) for index, line in enumerate(body) if line.strip())


def _stats(uri: str, lines: Iterable[tuple[int, bytes]], max_tokens: int) -> DatasetStats:
    kept = chars = tokens = 0
    dropped: list[int] = []
    reasons: list[str] = []
    for index, line in lines:
        if kept + len(dropped) >= MAX_EXAMPLES:
            raise DatasetError(f"The dataset {uri} has more than {MAX_EXAMPLES} examples.")
        example_chars = _example_chars(uri, index, line)
        example_tokens = -(-example_chars // CHARS_PER_TOKEN)
        if example_tokens > max_tokens:
            dropped.append(index)
            if len(reasons) < MAX_REASONS:
                reasons.append(f"Example {index}: {example_tokens} tokens > {max_tokens}.")
            continue
        kept, chars, tokens = kept + 1, chars + example_chars, tokens + example_tokens
    if kept == 0:
        raise DatasetError(f"The dataset {uri} has no usable examples.")
    return DatasetStats(kept, chars, tokens, tuple(dropped), tuple(reasons))


def _example_chars(uri: str, index: int, line: bytes) -> int:
    """The text characters of one example line; :class:`DatasetError` if malformed."""
    try:
        example: Any = json.loads(line)
    except ValueError as exc:
        raise DatasetError(f"{uri} line {index + 1} is not valid JSON.") from exc
    contents = example.get("contents") if isinstance(example, dict) else None
    if not isinstance(contents, list) or not contents:
        raise DatasetError(f"{uri} line {index + 1} has no 'contents'.")
    system = example.get("systemInstruction", example.get("system_instruction"))
    return sum(_text_chars(uri, index, content) for content in [system, *contents] if content)


def _text_chars(uri: str, index: int, content: Any) -> int:
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list):
        raise DatasetError(f"{uri} line {index + 1} has a content without 'parts'.")
    return sum(len(str(part.get("text", ""))) for part in parts if isinstance(part, dict))
