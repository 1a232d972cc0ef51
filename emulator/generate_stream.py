"""Answering ``generateContent`` and ``streamGenerateContent`` over HTTP, on both surfaces.

A stream is framed as the caller asked, as Google frames it:

- ``?alt=sse``: server-sent events, ``text/event-stream``, each chunk one event
  ``data: {GenerateContentResponse}\\r\\n\\r\\n`` (what google-genai asks for and parses);
- otherwise (``$alt=json``, or nothing): one JSON array written as it is produced,
  ``[{…}\\n,\\r\\n{…}\\n]`` (what the REST transports of Google's generated clients parse).

Both are sent with chunked transfer encoding, each chunk flushed as it is written. The stream
fault knobs (``emulator.faults``) apply here: ``chunk_delay_s`` waits between two chunks;
``cut_after_chunks`` N closes the connection after N chunks, before any terminator;
``stamp_chunks`` records when each chunk is sent (``emulator.stream_stamps``).
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from emulator.errors import JsonObject
from emulator.generate import Stamp, generate, stream_answer, unary_answer
from emulator.generate_request import GenerateRequest
from emulator.generate_schema import Surface
from emulator.handling import json_body, ok, wants_int_enums
from emulator.middleware import forced_rule
from emulator.state import state_of

# How often a delayed stream looks whether its caller has hung up (aiohttp does not cancel
# the handler of a request whose client went away).
HANG_UP_POLL_S = 0.05
SSE_CONTENT_TYPE = "text/event-stream"
JSON_CONTENT_TYPE = "application/json"


async def answer_generate(
    request: web.Request,
    surface: Surface,
    model_name: str,
    *,
    stream: bool,
    create_time: str | None = None,
) -> web.StreamResponse:
    """Read the request's body, run the made-up model and answer it, whole or streamed.

    Args:
        request: a ``generateContent`` or ``streamGenerateContent`` request, authorized.
        surface: the API answering.
        model_name: the tuned model or endpoint generating (named in the reply).
        stream: answer a stream of chunks rather than one response.
        create_time: the ``createTime`` of the answer, on surfaces that stamp it.
    """
    body = await json_body(request)
    answer = generate(GenerateRequest.from_json(body, surface), model_name)
    stamp = Stamp.of(model_name, body, create_time)
    if not stream:
        return ok(_encoded(unary_answer(answer, surface, stamp), surface, request))
    chunks = [_encoded(chunk, surface, request) for chunk in stream_answer(answer, surface, stamp)]
    return await write_stream(request, chunks)


def wants_sse(request: web.Request) -> bool:
    """Whether the caller asked for server-sent events (``alt=sse``)."""
    values = request.query.getall("alt", []) + request.query.getall("$alt", [])
    return any(value.split(";")[0] == "sse" for value in values)


async def write_stream(request: web.Request, chunks: list[JsonObject]) -> web.StreamResponse:
    """Send ``chunks`` as SSE or a JSON array, applying the stream fault knobs."""
    sse = wants_sse(request)
    response = web.StreamResponse(
        headers={"Content-Type": SSE_CONTENT_TYPE if sse else JSON_CONTENT_TYPE}
    )
    response.enable_chunked_encoding()
    await response.prepare(request)
    rule = forced_rule()
    cut_after = rule.cut_after_chunks if rule else None
    delay_s = rule.chunk_delay_s if rule else 0.0
    stamps = state_of(request).stream_stamps
    sent_s = stamps.begin() if rule and rule.stamp_chunks else None
    for sent, chunk in enumerate(chunks):
        if sent == cut_after:
            return _cut(request, response)
        if sent and delay_s and not await _still_listening(request, delay_s):
            return response
        framed = _frame(chunk, sent, sse)
        if sent_s is not None:
            stamps.stamp(sent_s)
        await response.write(framed)
    if cut_after is not None and cut_after >= len(chunks):
        return _cut(request, response)
    await response.write_eof(b"" if sse else b"\n]")
    return response


async def _still_listening(request: web.Request, delay_s: float) -> bool:
    """Wait ``delay_s`` of real time, less if the caller hangs up; whether it is still there.

    Real time on purpose: the caller cancels its stream meanwhile.
    """
    deadline_s = asyncio.get_running_loop().time() + delay_s
    while not _hung_up(request):
        left_s = deadline_s - asyncio.get_running_loop().time()
        if left_s <= 0:
            return True
        await asyncio.sleep(min(left_s, HANG_UP_POLL_S))
    return False


def _hung_up(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _frame(chunk: JsonObject, position: int, sse: bool) -> bytes:
    text = json.dumps(chunk)
    if sse:
        return f"data: {text}\r\n\r\n".encode()
    return (("[" if position == 0 else "\n,\r\n") + text).encode()


def _cut(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """Close the connection mid-stream: the caller never sees the stream's end."""
    if request.transport is not None:
        request.transport.close()
    return response


def _encoded(chunk: JsonObject, surface: Surface, request: web.Request) -> JsonObject:
    return surface.with_int_enums(chunk) if wants_int_enums(request) else chunk
