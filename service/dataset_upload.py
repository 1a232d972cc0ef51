"""A JSONL upload checked as it streams into its file: receive, check and write at once.

Three things overlap, each bounded, so memory does not grow with the dataset:
- receiving: the chunks are cut into blocks of whole lines (service.dataset_stream);
- checking: each block goes to a child process (`check`, one of the tenant's turns), at
  most IN_FLIGHT_BLOCKS at a time; their reports are added up in upload order;
- writing: each block found clean goes, through a queue of QUEUED_BLOCKS, to the file's
  upload (`write`, a resumable upload that only becomes an object with its last chunk).

gRPC's flow control does the rest: while the blocks in flight and the queue are full,
nothing more is read, and the client's sends wait.

The first violation stops the writing (the upload is cancelled: nothing is stored), not
the checking: the rest of the stream is read and checked, until the answer could list no
more violations, so that the caller learns about every problem at once, as for a small
file, and the client's last sends are not refused under it (a client-streaming call that
the server ends early makes the client's next send fail with a local INTERNAL instead of
our answer).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from core.cloud_storage import StagedObject
from core.errors import FieldViolation
from service.dataset_parsing import DatasetOptions, DatasetReport
from service.dataset_stream import (
    Block,
    BlockReport,
    LineBlocks,
    OverlongLine,
    StreamCheck,
    in_window,
    max_line_bytes,
)

IN_FLIGHT_BLOCKS = 4
QUEUED_BLOCKS = 8

CheckBlock = Callable[[Block, bool], Awaitable[BlockReport]]
WriteFile = Callable[[AsyncIterator[bytes]], Awaitable[StagedObject]]


class _Refused(Exception):
    """Ends the file's upload: the dataset has a violation."""


@dataclass(frozen=True)
class StreamedDataset:
    """What a streamed upload came to: its report, and its file if it has no violation."""

    report: DatasetReport
    file: StagedObject | None


async def stream_jsonl(
    chunks: AsyncIterator[bytes],
    *,
    options: DatasetOptions,
    max_bytes: int,
    check: CheckBlock,
    write: WriteFile,
) -> StreamedDataset:
    """Check the JSONL dataset `chunks` carry and write it with `write` as it comes.

    `chunks` may raise (a malformed message, a stalled client): then nothing is stored,
    and the error goes to the caller.
    """
    pipeline = _Pipeline(options, max_bytes, check)
    producer = asyncio.create_task(pipeline.produce(chunks))
    try:
        written: StagedObject | None = await write(pipeline.clean_blocks())
    except _Refused:
        written = None
    except BaseException:
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer
        raise
    await producer  # its own exception (from `chunks`), if it had one
    return StreamedDataset(pipeline.report(), written)


class _Pipeline:
    def __init__(self, options: DatasetOptions, max_bytes: int, check: CheckBlock) -> None:
        self._check = check
        self._max_bytes = max_bytes
        self._stream = StreamCheck(options)
        self._blocks = LineBlocks(max_line_bytes=max_line_bytes(options))
        self._in_flight: deque[tuple[Block, asyncio.Task[BlockReport]]] = deque()
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUED_BLOCKS)
        self._size_bytes = 0
        self._complete = False

    def report(self) -> DatasetReport:
        return self._stream.report(self._size_bytes, complete=self._complete)

    async def produce(self, chunks: AsyncIterator[bytes]) -> None:
        """Receive and check everything (or as much as is worth it), then end the queue."""
        try:
            await self._receive(chunks)
            while self._in_flight:
                await self._settle()
        finally:
            for _, task in self._in_flight:
                task.cancel()
            await self._end_queue()

    async def clean_blocks(self) -> AsyncIterator[bytes]:
        """The blocks to write, in order; _Refused once the dataset has a violation."""
        while (data := await self._queue.get()) is not None:
            if self._stream.refused:
                raise _Refused
            yield data
        if not self._complete or not self.report().ok:
            raise _Refused  # not all of it came (the producer's error says why), or bad

    async def _receive(self, chunks: AsyncIterator[bytes]) -> None:
        try:
            async for chunk in chunks:
                self._size_bytes += len(chunk)
                if self._size_bytes > self._max_bytes:
                    self._stream.refuse(_too_large(self._max_bytes))
                    return
                for block in self._blocks.feed(chunk):
                    await self._submit(block)
                if self._stream.full:
                    return
            for block in self._blocks.finish():
                await self._submit(block)
        except OverlongLine as exc:
            self._stream.refuse(exc.violation)
            return
        self._complete = True

    async def _submit(self, block: Block) -> None:
        task = asyncio.ensure_future(self._check(block, in_window(block)))
        self._in_flight.append((block, task))
        while len(self._in_flight) > IN_FLIGHT_BLOCKS:
            await self._settle()

    async def _settle(self) -> None:
        block, task = self._in_flight[0]
        report = await task
        self._in_flight.popleft()
        self._stream.add(report)
        if not self._stream.refused:
            await self._queue.put(block.data)

    async def _end_queue(self) -> None:
        """Put the end marker: after a refusal nobody may be reading, so what is queued
        is dropped to make room (it will never be written)."""
        if self._stream.refused:
            while self._queue.full():
                self._queue.get_nowait()
            self._queue.put_nowait(None)
        else:
            await self._queue.put(None)


def _too_large(max_bytes: int) -> FieldViolation:
    return FieldViolation("content", f"more than {max_bytes} bytes; split the dataset")
