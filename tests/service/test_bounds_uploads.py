"""UploadDataset's bounds: streams per tenant and per replica, idle and total time, and the
dataset check kept off the event loop that serves everyone's reads."""

from __future__ import annotations

import asyncio
import multiprocessing
import pickle
import statistics
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2

from service.dataset_checker import DatasetChecker, check_dataset
from service.dataset_parsing import DatasetFormat, DatasetOptions, parse_dataset
from tests.conftest import SystemFactory
from tests.harness import System
from tests.rpc_errors import detail, reason, violations
from tests.service.test_datasets import jsonl
from tuning.v1 import dataset_pb2, tuning_service_pb2

Request = tuning_service_pb2.UploadDatasetRequest
SPEC = dataset_pb2.Dataset(format=dataset_pb2.Dataset.JSONL)
pytestmark = pytest.mark.timeout(30)


async def held_parts(
    release: asyncio.Event, *, every_s: float | None = None
) -> AsyncIterator[Request]:
    """The metadata, then nothing until `release` (or a tiny chunk every `every_s`)."""
    yield Request(dataset=SPEC)
    while every_s is not None and not release.is_set():
        await asyncio.sleep(every_s)
        yield Request(chunk=b" ")
    await release.wait()


class HeldUploads:
    """Upload streams a test opens and keeps open; cancelled when the test ends."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.release = asyncio.Event()
        self.calls: list[asyncio.Task[dataset_pb2.Dataset]] = []
        self.started: list[Any] = []

    async def on_server(self) -> None:
        """Wait until the server has begun every stream opened so far: it answers each
        upload's initial metadata (its request id) as it starts it. Without this wait a
        test could probe before a held stream had reached the server at all, and the
        probes, each taking a slot first, would win the race for 20 s on end."""
        async with asyncio.timeout(10):
            await asyncio.gather(*(call.initial_metadata() for call in self.started))

    def open(
        self, tenant: str, *, every_s: float | None = None
    ) -> asyncio.Task[dataset_pb2.Dataset]:
        call = self.system.stub.UploadDataset(
            held_parts(self.release, every_s=every_s), metadata=self.system.auth(tenant)
        )
        self.started.append(call)
        task: asyncio.Task[dataset_pb2.Dataset] = asyncio.ensure_future(call)
        self.calls.append(task)
        return task

    async def aclose(self) -> None:
        for task in self.calls:
            task.cancel()
        await asyncio.gather(*self.calls, return_exceptions=True)


async def refused_upload(system: System, tenant: str, held: HeldUploads) -> grpc.aio.AioRpcError:
    """The refusal of a new upload stream once the held ones are all open on the server.

    The probe has no metadata message: a stream that gets a slot is refused INVALID_ARGUMENT
    at its first message (nothing is stored), so the probe is sent until another answer.
    """
    await held.on_server()
    probe = tuning_service_pb2.UploadDatasetRequest(chunk=b"{}")
    async with asyncio.timeout(20):
        while True:
            try:
                # Each probe has a deadline: under load one probe in many hundreds was seen
                # to wait for the server's first answer until the test's own timeout (the
                # cause is not found; see the closing note of 2026-12-01), and a probe that
                # never answers says nothing about the slots.
                await system.stub.UploadDataset(
                    iter([probe]), metadata=system.auth(tenant), timeout=2.0
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in (
                    grpc.StatusCode.INVALID_ARGUMENT,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                ):
                    return exc
            await asyncio.sleep(0.01)


async def upload_when_free(system: System, tenant: str) -> dataset_pb2.Dataset:
    """Upload 20 examples, retrying while the tenant's slots are still being given back."""
    async with asyncio.timeout(10):
        while True:
            try:
                return await system.upload(jsonl(20), tenant=tenant)
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                    raise
            await asyncio.sleep(0.02)


def quota_subject(error: grpc.aio.AioRpcError) -> str:
    return str(detail(error, error_details_pb2.QuotaFailure).violations[0].subject)


async def test_a_tenant_over_its_uploads_is_refused_at_once_and_others_still_upload(
    make_system: SystemFactory,
) -> None:
    async with make_system(tenant_max_uploads=2, upload_idle_timeout_s=30.0) as system:
        held = HeldUploads(system)
        try:
            streams = [held.open("team-a") for _ in range(2)]
            refusal = await refused_upload(system, "team-a", held)
            assert refusal.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert reason(refusal) == "TOO_MANY_UPLOADS"
            assert quota_subject(refusal) == "tenant:team-a"
            assert detail(refusal, error_details_pb2.RetryInfo).retry_delay.ToTimedelta()
            assert not any(stream.done() for stream in streams)  # refused, not queued
            with pytest.raises(grpc.aio.AioRpcError) as whole:  # a client sending it all
                await system.upload(jsonl(5000), tenant="team-a")
            assert whole.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert (await system.upload(jsonl(20), tenant="team-b")).stats.example_count == 20
        finally:
            await held.aclose()
        # Cancelled streams give their slots back (once the server has seen the cancels).
        assert (await upload_when_free(system, "team-a")).stats.example_count == 20


async def test_the_replica_limit_counts_every_tenant(make_system: SystemFactory) -> None:
    async with make_system(
        tenant_max_uploads=2, max_uploads=3, upload_idle_timeout_s=30.0
    ) as system:
        held = HeldUploads(system)
        try:
            held.open("team-a")
            held.open("team-a")
            held.open("team-b")
            refusal = await refused_upload(system, "team-ro", held)
            assert refusal.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert quota_subject(refusal) == "replica:uploads"
        finally:
            await held.aclose()


async def test_an_idle_stream_is_ended_and_its_slot_freed(make_system: SystemFactory) -> None:
    async with make_system(tenant_max_uploads=1, upload_idle_timeout_s=0.3) as system:
        held = HeldUploads(system)
        try:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await held.open("team-a")  # the client never sends more nor ends the stream
        finally:
            await held.aclose()
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert reason(caught.value) == "UPLOAD_TIMED_OUT"
        assert "sent nothing for 0.3s" in (caught.value.details() or "")
        assert (await system.upload(jsonl(20))).stats.example_count == 20


async def test_a_stream_that_trickles_forever_is_ended(make_system: SystemFactory) -> None:
    async with make_system(upload_idle_timeout_s=0.3, upload_max_s=0.6) as system:
        held = HeldUploads(system)
        try:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await held.open("team-a", every_s=0.05)  # never idle, never done
        finally:
            await held.aclose()
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "took longer than 0.6s" in (caught.value.details() or "")


async def test_an_oversized_chunk_is_refused_before_it_is_kept(make_system: SystemFactory) -> None:
    async with make_system(dataset_stream_max_bytes=2000) as system:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await system.upload(b"x" * 5000, chunk_bytes=5000)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "content" in violations(caught.value)


# ---- Checking datasets in other processes ----------------------------------------------------

BAD_LINE = b"not json at all, {\n"


def bad_dataset(size_bytes: int) -> bytes:
    """Lines that are all bad: the slowest dataset to check, refused with 101 violations."""
    return BAD_LINE * (size_bytes // len(BAD_LINE))


def test_what_a_child_sends_back_pickles_and_keeps_every_message() -> None:
    raw = jsonl(25, **{"3": {"text_input": "x", "output": ""}})
    checked = check_dataset(raw, DatasetFormat.JSONL, DatasetOptions())
    assert pickle.loads(pickle.dumps(checked)) == checked  # noqa: S301 (our own bytes)
    assert checked.report.violations == parse_dataset(raw, DatasetFormat.JSONL).violations
    assert checked.examples == b""
    report = parse_dataset(jsonl(25), DatasetFormat.JSONL)
    assert pickle.loads(pickle.dumps(report)) == report  # noqa: S301 (our own bytes)


async def test_the_checker_runs_in_its_processes_and_stops_them() -> None:
    checker = DatasetChecker(processes=1, per_tenant=1)
    try:
        checked = await checker.check("team-a", jsonl(25), DatasetFormat.JSONL, DatasetOptions())
        assert checked.report.ok and checked.report.stats.examples == 25
        assert checked.examples.startswith(b'{"text_input":"question: 0?","output":"1"}\n')
        processes = list(checker._pool._processes.values())  # type: ignore[union-attr]
        assert processes and all(p.is_alive() for p in processes)
    finally:
        checker.close()
    assert not any(p.is_alive() for p in processes)


class LoopGaps:
    """How long the event loop took to come back to a task that wakes every millisecond:
    how long anything on the loop (an RPC of another tenant, say) may have had to wait."""

    def __init__(self) -> None:
        self.gaps_s: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def p95_s(self) -> float:
        return statistics.quantiles(self.gaps_s, n=20)[-1]

    async def _tick(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            self.gaps_s.append(now - last)
            last = now

    async def __aenter__(self) -> LoopGaps:
        self._task = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def victim_reads_s(system: System, name: str, until: asyncio.Future[Any]) -> list[float]:
    """Seconds of each of team-b's GetTuningJob calls, a few milliseconds apart, until `until`
    is done (and at least 10 of them)."""
    latencies: list[float] = []
    while not until.done() or len(latencies) < 10:
        started = time.perf_counter()
        await system.get(name, tenant="team-b")
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(0.005)
    return latencies


def bad_uploads(system: System, count: int, size_bytes: int) -> asyncio.Future[list[object]]:
    """`count` uploads by team-a at once, every line of each bad; their refusals, gathered."""
    content = bad_dataset(size_bytes)
    uploads = (system.upload(content, chunk_bytes=64 * 1024) for _ in range(count))
    return asyncio.gather(*uploads, return_exceptions=True)


def refused_as_invalid(answers: Sequence[object]) -> bool:
    return all(
        isinstance(a, grpc.aio.AioRpcError) and a.code() == grpc.StatusCode.INVALID_ARGUMENT
        for a in answers
    )


async def test_checking_a_tenants_bad_uploads_does_not_hold_up_anothers_reads(
    make_system: SystemFactory,
) -> None:
    """On a thread (the code before), 4 such checks made team-b's reads 40 times slower and
    kept the loop from its other tasks for tens of milliseconds at a time."""
    async with make_system(
        validation_processes=2, tenant_max_uploads=4, tenant_max_validations=2
    ) as system:
        job = await system.create("team-b")
        await system.upload(jsonl(20))  # the children are started: not part of the attack
        async with LoopGaps() as quiet_gaps:
            quiet = await victim_reads_s(
                system, job.name, asyncio.ensure_future(asyncio.sleep(0.3))
            )
        async with LoopGaps() as gaps:
            attack = bad_uploads(system, 4, 600_000)
            during = await victim_reads_s(system, job.name, attack)
        assert refused_as_invalid(await attack)
        quiet_p50, during_p50 = statistics.median(quiet), statistics.median(during)
        print(
            f"team-b's reads: p50 {quiet_p50 * 1e3:.1f} ms quiet, {during_p50 * 1e3:.1f} ms "
            f"during ({len(during)} reads); the loop's gaps: p95 {quiet_gaps.p95_s() * 1e3:.1f} "
            f"ms quiet, {gaps.p95_s() * 1e3:.1f} ms during, longest {max(gaps.gaps_s) * 1e3:.1f} ms"
        )
        # Relative bounds, and no bound on the longest gap: other programs on the machine
        # may take the CPU away from this one for a while, whatever it runs.
        assert during_p50 < 5 * quiet_p50 + 0.010
        assert gaps.p95_s() < 3 * quiet_gaps.p95_s() + 0.010


async def sent_then_answer(
    system: System, content: bytes, sent: asyncio.Event
) -> dataset_pb2.Dataset:
    """team-a's upload of `content`, setting `sent` once its last chunk is handed to gRPC."""

    async def parts() -> AsyncIterator[Request]:
        yield Request(dataset=SPEC)
        for start in range(0, len(content), 64 * 1024):
            yield Request(chunk=content[start : start + 64 * 1024])
        sent.set()

    answer: dataset_pb2.Dataset = await system.stub.UploadDataset(
        parts(), metadata=system.auth("team-a")
    )
    return answer


async def test_a_tenants_checks_wait_their_turn_and_others_go_first(
    make_system: SystemFactory,
) -> None:
    """team-a's second check waits for its first, so team-b's takes the other process
    (without the bound, team-a's two took both and team-b's waited for one of them)."""
    async with make_system(validation_processes=2, tenant_max_validations=1) as system:
        # Both children started: two tenants' uploads checked at once.
        await asyncio.gather(system.upload(jsonl(20)), system.upload(jsonl(20), tenant="team-ro"))
        content = bad_dataset(600_000)
        sent = [asyncio.Event(), asyncio.Event()]
        attack = [asyncio.ensure_future(sent_then_answer(system, content, e)) for e in sent]
        try:
            await asyncio.gather(*(e.wait() for e in sent))
            dataset = await system.upload(jsonl(20), tenant="team-b")
            assert dataset.stats.example_count == 20
            assert not any(a.done() for a in attack)  # team-b was not queued behind team-a
        finally:
            answers = await asyncio.gather(*attack, return_exceptions=True)
        assert refused_as_invalid(answers)


async def test_the_api_stops_its_checking_processes_when_it_stops(
    make_system: SystemFactory,
) -> None:
    async with make_system(validation_processes=1) as system:
        before = set(multiprocessing.active_children())
        await system.upload(jsonl(20))
        children = set(multiprocessing.active_children()) - before
        assert children  # started on first use
    assert not any(child.is_alive() for child in children)


async def test_a_cancelled_upload_keeps_its_turn_until_its_check_ends(
    make_system: SystemFactory,
) -> None:
    """team-a cancels an upload being checked and sends another: the new check waits for the
    child to finish the old one, so team-b's check finds a free process at once (without
    the turn kept, team-a's two checks took both processes and team-b's waited)."""
    async with make_system(validation_processes=2, tenant_max_validations=1) as system:
        await asyncio.gather(system.upload(jsonl(20)), system.upload(jsonl(20), tenant="team-ro"))
        content = bad_dataset(800_000)
        started = time.perf_counter()
        with pytest.raises(grpc.aio.AioRpcError):
            await sent_then_answer(system, content, asyncio.Event())
        check_s = time.perf_counter() - started  # one bad upload, alone
        sent = asyncio.Event()
        cancelled = asyncio.ensure_future(sent_then_answer(system, content, sent))
        await sent.wait()
        await asyncio.sleep(check_s / 4)  # its check has begun in a child
        cancelled.cancel()
        again_sent = asyncio.Event()
        again = asyncio.ensure_future(sent_then_answer(system, content, again_sent))
        try:
            await again_sent.wait()
            started = time.perf_counter()
            dataset = await system.upload(jsonl(20), tenant="team-b")
            team_b_s = time.perf_counter() - started
        finally:
            answers = await asyncio.gather(again, cancelled, return_exceptions=True)
        assert dataset.stats.example_count == 20
        assert refused_as_invalid(answers[:1])
        assert team_b_s < check_s / 4, (team_b_s, check_s)
