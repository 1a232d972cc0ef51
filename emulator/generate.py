"""The made-up model behind ``generateContent`` on both surfaces, and its answers' shapes.

No model runs. Candidate 0 answers ``[emulated reply from {model}; no model was run] You
said: {echo}``, the echo being the first 80 characters of the last user turn; candidate
``i > 0`` appends `` (candidate {i})``. The same request always gets the same answer.

Counting rule: a token is a whitespace-separated word. ``promptTokenCount`` counts the words
of the system instruction and of every turn; ``candidatesTokenCount`` those of every
candidate's text as answered (after any cut); ``totalTokenCount`` is their sum. Zero counts
are omitted, as proto3 JSON omits them.

Cuts: ``stopSequences`` end a candidate just before the first occurrence of any of them
(``finishReason`` STOP, the sequence not included); ``maxOutputTokens`` N ends it after its
first N words (``MAX_TOKENS``); whichever comes first.

Safety: every prompt text is read for two markers. ``[blocked]`` rates the prompt HIGH for
``HARM_CATEGORY_DANGEROUS_CONTENT``: the answer has ``promptFeedback.blockReason`` SAFETY
and no candidates. ``[unsafe-answer]`` rates each candidate HIGH for that category: it has
``finishReason`` SAFETY and no content. Either holds unless the caller's threshold for that
category is ``BLOCK_NONE`` or ``OFF``; then the answer is given, rated HIGH. Every other
rating is NEGLIGIBLE.

A streamed answer is the same answer cut into chunks of ``CHUNK_WORDS`` words of each
candidate; ``finishReason`` and ``safetyRatings`` come on the last chunk, and
``usageMetadata`` on the last chunk only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass

from emulator.errors import JsonObject
from emulator.generate_request import GenerateRequest
from emulator.generate_schema import RATED_CATEGORIES, Surface

PROMPT_ECHO_MAX_CHARS = 80
CHUNK_WORDS = 4
BLOCKED_MARKER = "[blocked]"
UNSAFE_ANSWER_MARKER = "[unsafe-answer]"
FLAGGED_CATEGORY = "HARM_CATEGORY_DANGEROUS_CONTENT"
_UNBLOCKED_THRESHOLDS = frozenset({"BLOCK_NONE", "OFF"})
_WORD = re.compile(r"\S+\s*")


@dataclass(frozen=True)
class Candidate:
    """One candidate: its text as answered, why it ended, whether it was rated HIGH."""

    text: str
    finish_reason: str
    flagged: bool = False


@dataclass(frozen=True)
class Answer:
    """What the made-up model answers one request."""

    prompt_tokens: int
    candidates: tuple[Candidate, ...]
    prompt_blocked: bool = False

    @property
    def candidate_tokens(self) -> int:
        """The words of every candidate's text."""
        return sum(_count_words(candidate.text) for candidate in self.candidates)


@dataclass(frozen=True)
class Stamp:
    """What every chunk of one answer carries besides its content."""

    model_version: str
    response_id: str
    create_time: str | None = None

    @classmethod
    def of(cls, model_name: str, body: JsonObject, create_time: str | None = None) -> Stamp:
        """A stamp whose ``responseId`` is a digest of the model and the request body."""
        seed = json.dumps([model_name, body], sort_keys=True).encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(seed).digest()[:15]).decode()
        return cls(model_name, digest, create_time)

    def json(self) -> JsonObject:
        """``modelVersion``, ``createTime`` (when set) and ``responseId``."""
        stamp: JsonObject = {"modelVersion": self.model_version}
        if self.create_time is not None:
            stamp["createTime"] = self.create_time
        return stamp | {"responseId": self.response_id}


def generate(request: GenerateRequest, model_name: str) -> Answer:
    """The made-up model's answer to ``request`` (the rules are in the module docstring)."""
    prompt = request.prompt_texts()
    prompt_tokens = sum(_count_words(text) for text in prompt)
    lets_through = request.thresholds.get(FLAGGED_CATEGORY) in _UNBLOCKED_THRESHOLDS
    if any(BLOCKED_MARKER in text for text in prompt) and not lets_through:
        return Answer(prompt_tokens, (), prompt_blocked=True)
    flagged = any(UNSAFE_ANSWER_MARKER in text for text in prompt)
    if flagged and not lets_through:
        refused = Candidate("", "SAFETY", flagged=True)
        return Answer(prompt_tokens, (refused,) * request.config.candidate_count)
    echo = request.last_user_text()[:PROMPT_ECHO_MAX_CHARS]
    reply = f"[emulated reply from {model_name}; no model was run] You said: {echo}"
    candidates = tuple(
        _cut(reply + (f" (candidate {i})" if i else ""), request, flagged)
        for i in range(request.config.candidate_count)
    )
    return Answer(prompt_tokens, candidates)


def _cut(text: str, request: GenerateRequest, flagged: bool) -> Candidate:
    """``text`` ended at the first stop sequence or after ``maxOutputTokens`` words."""
    stops = [text.find(stop) for stop in request.config.stop_sequences]
    text = text[: min((at for at in stops if at >= 0), default=len(text))]
    limit = request.config.max_output_tokens
    words = _WORD.findall(text)
    if limit and len(words) > limit:
        return Candidate("".join(words[:limit]).rstrip(), "MAX_TOKENS", flagged)
    return Candidate(text, "STOP", flagged)


def unary_answer(answer: Answer, surface: Surface, stamp: Stamp) -> JsonObject:
    """The whole answer as one ``GenerateContentResponse``."""
    return stream_answer(answer, surface, stamp, chunk_words=0)[0]


def stream_answer(
    answer: Answer, surface: Surface, stamp: Stamp, chunk_words: int = CHUNK_WORDS
) -> list[JsonObject]:
    """The answer as the chunks of a stream (one chunk when ``chunk_words`` is 0)."""
    if answer.prompt_blocked:
        ratings = _ratings(surface, flagged=True, blocked=True)
        feedback = {"blockReason": "SAFETY", "safetyRatings": ratings}
        return [{"promptFeedback": feedback, "usageMetadata": _usage(answer)} | stamp.json()]
    pieces = [_pieces(candidate.text, chunk_words) for candidate in answer.candidates]
    count = max([1, *(len(texts) for texts in pieces)])
    chunks = [_chunk(answer, pieces, k, count, surface) for k in range(count)]
    chunks[-1]["usageMetadata"] = _usage(answer)
    return [chunk | stamp.json() for chunk in chunks]


def _chunk(
    answer: Answer, pieces: list[list[str]], k: int, count: int, surface: Surface
) -> JsonObject:
    """Chunk ``k`` of ``count``: each candidate's ``k``-th piece, and at the end its finish."""
    last = k == count - 1
    entries: list[JsonObject] = []
    for index, (candidate, texts) in enumerate(zip(answer.candidates, pieces, strict=True)):
        entry: JsonObject = {"index": index}
        if k < len(texts):
            entry["content"] = {"parts": [{"text": texts[k]}], "role": "model"}
        if last:
            blocked = candidate.finish_reason == "SAFETY"
            entry["finishReason"] = candidate.finish_reason
            entry["safetyRatings"] = _ratings(surface, candidate.flagged, blocked)
        if len(entry) > 1:
            entries.append(entry)
    return {"candidates": entries}


def _pieces(text: str, chunk_words: int) -> list[str]:
    """``text`` in runs of ``chunk_words`` words (all of it when 0); none when empty."""
    if not text:
        return []
    words = _WORD.findall(text) if chunk_words else [text]
    step = chunk_words or 1
    return ["".join(words[at : at + step]) for at in range(0, len(words), step)]


def _ratings(surface: Surface, flagged: bool, blocked: bool) -> list[JsonObject]:
    return [_rating(surface, category, flagged, blocked) for category in RATED_CATEGORIES]


def _rating(surface: Surface, category: str, flagged: bool, blocked: bool) -> JsonObject:
    """NEGLIGIBLE, or HIGH for the flagged category (``blocked`` when it stopped the answer)."""
    high = flagged and category == FLAGGED_CATEGORY
    rating: JsonObject = {"category": category, "probability": "HIGH" if high else "NEGLIGIBLE"}
    if surface.rates_severity:
        rating["severity"] = "HARM_SEVERITY_HIGH" if high else "HARM_SEVERITY_NEGLIGIBLE"
    if high and blocked:
        rating["blocked"] = True
    return rating


def _usage(answer: Answer) -> JsonObject:
    counts = {
        "promptTokenCount": answer.prompt_tokens,
        "candidatesTokenCount": answer.candidate_tokens,
        "totalTokenCount": answer.prompt_tokens + answer.candidate_tokens,
    }
    return {key: count for key, count in counts.items() if count}


def _count_words(text: str) -> int:
    return len(text.split())
