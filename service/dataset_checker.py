"""Checking uploaded datasets (and preparing large creates: service.create_preparation) off
the event loop, in a pool of processes the API owns.

`parse_dataset` is pure Python and takes up to a second of CPU on 4 MB of bad lines. On the
event loop, or on a thread (which holds the GIL for all of it but the switch interval), it
would make every other caller of the replica wait. So the check runs in child processes:
only the bytes and the options go to the child, and only the report (without its examples)
and the examples already encoded as stored come back, so the API process does no per-example
work. The children run at a lower CPU priority than the API process, so that on a busy node
the scheduler serves reads first.

A tenant's checks run `per_tenant` at a time; the others wait their turn, each holding its
upload slot (service.upload_bounds), so the waiting is bounded too. With `processes=0` the
check runs on a thread of the API process, as a small deployment or a test may prefer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import multiprocessing
import os
import signal
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from core.dataset_files import encode_jsonl
from service.dataset_parsing import DatasetFormat, DatasetOptions, DatasetReport, parse_dataset

log = logging.getLogger(__name__)

_T = TypeVar("_T")

CHILD_NICENESS = 10
"""How much lower the children's CPU priority is than the API process's (`os.nice`)."""


@dataclass(frozen=True)
class CheckedDataset:
    """A dataset checked: its report without the examples, and the examples as stored."""

    report: DatasetReport
    examples: bytes  # the valid examples as their file holds them; empty after a violation


def check_dataset(raw: bytes, fmt: DatasetFormat, options: DatasetOptions) -> CheckedDataset:
    """`parse_dataset`, and the examples encoded: what a child process sends back."""
    report = parse_dataset(raw, fmt, options)
    examples = encode_jsonl(report.inputs, report.outputs) if report.ok else b""
    return CheckedDataset(dataclasses.replace(report, inputs=(), outputs=()), examples)


def _child_setup() -> None:
    os.nice(CHILD_NICENESS)
    # Ctrl-C reaches the whole process group; the API stops its children itself (`close`).
    signal.signal(signal.SIGINT, signal.SIG_IGN)


async def _outcome(future: Future[_T]) -> _T:
    """The result of `future`. A caller cancelled (its client went away) gets its
    CancelledError only once the work has stopped: a child goes on with a check it has
    begun, and until it ends the tenant's turn stays taken, or a tenant that cancels its
    uploads could keep every child busy."""
    waiting = asyncio.wrap_future(future)
    try:
        return await asyncio.shield(waiting)
    except asyncio.CancelledError:
        if not future.cancel():
            await asyncio.wait([waiting])
            if not waiting.cancelled():
                waiting.exception()  # retrieved: nobody wants it now
        raise


@dataclass
class _Tenant:
    turns: asyncio.Semaphore
    users: int = 0  # holding or waiting for a turn


class DatasetChecker:
    """Checks datasets in up to `processes` children (started on first use), `per_tenant`
    at a time for each tenant. `close` stops the children."""

    def __init__(self, *, processes: int, per_tenant: int) -> None:
        self._processes = processes
        self._per_tenant = per_tenant
        self._pool = self._new_pool()
        self._tenants: dict[str, _Tenant] = {}

    async def check(
        self, tenant: str, raw: bytes, fmt: DatasetFormat, options: DatasetOptions
    ) -> CheckedDataset:
        """The checked dataset, once one of `tenant`'s turns is free."""
        return await self.run(tenant, check_dataset, raw, fmt, options)

    async def run(self, tenant: str, work: Callable[..., _T], *args: Any) -> _T:
        """`work(*args)` in a child (a module-level function, its arguments and result
        picklable), once one of `tenant`'s turns is free."""
        async with self._turn(tenant):
            if self._pool is None:
                return await asyncio.to_thread(work, *args)
            pool = self._pool
            try:
                return await _outcome(pool.submit(work, *args))
            except BrokenProcessPool:
                # A child died (killed for its memory, say): this call fails as INTERNAL,
                # and the next ones get a new pool instead of the broken one forever.
                self._replace(pool)
                raise

    def close(self) -> None:
        """Stop the children (after the server has drained: nothing is being checked)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    @asynccontextmanager
    async def _turn(self, tenant: str) -> AsyncIterator[None]:
        entry = self._tenants.setdefault(tenant, _Tenant(asyncio.Semaphore(self._per_tenant)))
        entry.users += 1
        try:
            async with entry.turns:
                yield
        finally:
            entry.users -= 1
            if not entry.users:  # only tenants with a check running or waiting are kept
                del self._tenants[tenant]

    def _new_pool(self) -> ProcessPoolExecutor | None:
        if self._processes <= 0:
            return None
        # Spawned, not forked: the API process runs gRPC's threads, which fork does not copy.
        context = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(self._processes, mp_context=context, initializer=_child_setup)

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        if self._pool is broken:
            log.error("a dataset-checking process died; starting new ones")
            broken.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
