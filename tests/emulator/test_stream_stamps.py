"""The ``stamp_chunks`` knob: when each chunk of a stream left, read from ``/_emulator/streams``.

The stamps are the emulator's ``time.monotonic()``, the same clock as the test's on this
host, so they are checked against the moments the test itself received each chunk.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import httpx
import pytest

from emulator.stream_stamps import StreamStamps
from tests.clocks import FakeClock
from tests.emulator.helpers import create_model, inject_faults

MODEL = "/v1beta/tunedModels/gen"
PROMPT = {"contents": [{"role": "user", "parts": [{"text": "Count one two three four five."}]}]}
SSE = {"alt": "sse"}
STREAM_ROUTE = "tunedModels.streamGenerateContent"


@pytest.fixture
async def active(http: httpx.AsyncClient, owner: dict[str, str], clock: FakeClock) -> None:
    """The owner's tuned model ``gen``, trained to ACTIVE."""
    await create_model(http, owner, "gen")
    clock.advance(60.0)


async def streamed(
    http: httpx.AsyncClient, owner: dict[str, str], params: dict[str, str] | None = None
) -> tuple[bytes, list[float]]:
    """A stream's whole body, and the moment each of its HTTP chunks arrived here."""
    body, arrivals_s = b"", []
    async with http.stream(
        "POST", f"{MODEL}:streamGenerateContent", json=PROMPT, headers=owner, params=params
    ) as response:
        assert response.status_code == 200
        async for piece in response.aiter_raw():
            arrivals_s.append(time.monotonic())
            body += piece
    return body, arrivals_s


async def stamped_streams(http: httpx.AsyncClient) -> list[list[float]]:
    response = await http.get("/_emulator/streams")
    assert response.status_code == 200
    return [stream["sent_monotonic_s"] for stream in response.json()["streams"]]


@pytest.mark.usefixtures("active")
@pytest.mark.parametrize("params", [SSE, None], ids=["sse", "json-array"])
async def test_a_stamped_stream_sends_the_same_bytes(
    http: httpx.AsyncClient, owner: dict[str, str], params: dict[str, str] | None
) -> None:
    plain, _ = await streamed(http, owner, params)
    await inject_faults(http, {"route": STREAM_ROUTE, "stamp_chunks": True})

    stamped, _ = await streamed(http, owner, params)

    assert stamped == plain
    assert len(await stamped_streams(http)) == 1


@pytest.mark.usefixtures("active")
async def test_each_chunk_is_stamped_before_it_arrives(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    delay_s = 0.05
    rule = {"route": STREAM_ROUTE, "stamp_chunks": True, "chunk_delay_s": delay_s}
    await inject_faults(http, rule)
    started_s = time.monotonic()

    body, arrivals_s = await streamed(http, owner, SSE)

    [sent_s] = await stamped_streams(http)
    assert len(sent_s) == body.count(b"data: ") >= 3
    assert started_s < sent_s[0] <= arrivals_s[0]
    gaps_s = [later - earlier for earlier, later in itertools.pairwise(sent_s)]
    assert min(gaps_s) >= delay_s * 0.9
    assert sent_s[-1] <= arrivals_s[-1]


@pytest.mark.usefixtures("active")
async def test_only_streams_asked_for_are_stamped_until_forgotten(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    await inject_faults(http, {"route": STREAM_ROUTE, "stamp_chunks": True, "times": 2})
    for _ in range(3):
        await streamed(http, owner, SSE)
    assert len(await stamped_streams(http)) == 2

    assert (await http.delete("/_emulator/streams")).status_code == 200

    assert await stamped_streams(http) == []


def test_only_the_last_streams_are_kept() -> None:
    stamps = StreamStamps(kept=2)
    for _ in range(3):
        stamps.stamp(stamps.begin())

    assert len(stamps.listing()["streams"]) == 2


@pytest.mark.parametrize(
    "rule",
    [
        {"route": "tunedModels.generateContent", "stamp_chunks": True},
        {"route": STREAM_ROUTE, "stamp_chunks": "yes"},
    ],
)
async def test_the_stamp_knob_is_refused_where_it_cannot_apply(
    http: httpx.AsyncClient, rule: dict[str, Any]
) -> None:
    response = await http.post("/_emulator/faults", json={"rules": [rule]})

    assert response.status_code == 400


async def test_the_stamp_knob_lists_back_as_posted(http: httpx.AsyncClient) -> None:
    rule = {"route": STREAM_ROUTE, "stamp_chunks": True, "chunk_delay_s": 0.5, "times": 3}
    await inject_faults(http, rule)

    listed = (await http.get("/_emulator/faults")).json()["rules"]

    assert listed == [rule]
