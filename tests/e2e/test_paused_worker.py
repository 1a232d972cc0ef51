"""Issue 13's soak, for real: a worker paused past its leases while its jobs are cancelled.

Worker A (a real `python -m worker` process, leases of 1 s) takes twelve jobs of two
tenants and is caught at the two worst moments of a visit:

- team-b's six visits wait for their tenant's OAuth token (the emulator answers it 6 s
  late), leases held, about to create;
- team-a's six visits have sent their creates, which the emulator holds 3 s before it
  performs them: requests already on their way, which no fence can call back.

A is SIGSTOPped there, holding all twelve leases. Meanwhile four jobs of each tenant are
cancelled and one of each deleted through the API, and worker B (a process) takes the
jobs over once A's leases run out. Then A is SIGCONTed, and B's reconciler (a pass every
second, grace 2 s) runs past its grace. The emulator's clock follows real time, so the
grace counts from when a model really appeared.

What it proves, counted by the emulator's stats:

- Every cancel completes (CANCELLED) within CANCEL_BOUND_S of its CancelTuningJob call,
  B's start included (measured: 1-1.5 s idle, up to 4 s on two saturated cores); every
  deleted job is NOT_FOUND at once, and its record is removed (clean-up done) at most
  CANCEL_BOUND_S after that. Cancelled jobs stay CANCELLED to the end.
- Exactly one create per job that has a model: each of team-a's six held creates lands
  (one each), and each untouched job has a model; those are 7 lower bounds that sum to
  7, and the emulator counted exactly 7 successful creates, so no job's model was
  created twice, and nothing was created for team-b's cancelled or deleted jobs (their
  creates would be an 8th).
- A, resumed, sends no create, cancel or delete: it meets "lease taken over" or "lease
  lost", and the side-effect requests do not move after its SIGCONT.
- Once the reconciler has run, the only live models are the two untouched jobs' (the
  tenants' own listings): the five models team-a's held creates left for cancelled or
  deleted jobs are gone.

The visits' deadlines (step 30 s, visit 45 s) outlast A's pause, so when A resumes only
its fences stand between it and the upstream: with `Fence.check` disabled, this test
fails (9 creates: team-b's stale visits create after the takeover).

A runs no reconciler (`reconcile_interval_s=0`): a pass holds the fleet lock for 60 s
(worker.reconciler.LOCK_LEASE_S), so a SIGSTOP landing mid-pass would keep B's passes
away for a minute; that is the design's liveness bound, not what this test is about.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from core.redis.keys import Keys
from devstack.processes import Child
from tests.harness import State, System, token_form
from tuning.v1 import tuning_job_pb2

pytestmark = pytest.mark.timeout(90)

LEASE_S = 1.0
"""Job lease and claim lease of both workers."""
TOKEN_STALL_S = 6.0
"""How late the emulator answers A's first token request (team-b's visits wait on it)."""
CREATE_HOLD_S = 3.0
"""How long the emulator holds each of team-a's six creates before performing it."""
GRACE_S = 2.0
"""The reconciler's grace: above the lease, as the setting's doc asks."""
CANCEL_BOUND_S = 15.0
"""The bound on each cancel: CancelTuningJob to CANCELLED. It covers A's lease running
out (1 s), B's process starting (a few seconds on a loaded machine), B's claim, and one
visit (cancel, status, delete upstream)."""
RECONCILE_BOUND_S = 15.0
"""From A's SIGCONT until the reconciler has left only the untouched jobs' models."""
JOBS_PER_TENANT = 6
CANCELLED_PER_TENANT = 4
DELETED_PER_TENANT = 1
TENANTS = ("team-a", "team-b")
SIDE_EFFECTS = ("tunedModels.create", "tunedModels.delete", "operations.cancel")
WORKER_SETTINGS: dict[str, Any] = {
    "job_lease_s": LEASE_S,
    "claim_lease_s": LEASE_S,
    # Deadlines longer than A's pause: when A resumes, its visits' deadlines have not
    # passed, so only the fence (worker.fence) stands between them and the upstream.
    "step_timeout_s": 30.0,
    "visit_timeout_s": 45.0,
    "upstream_rps": 0.0,  # the fleet's rate limit is not under test: no waits from it
    "reconcile_grace_s": GRACE_S,
}


@dataclass
class Plan:
    """One tenant's jobs, by what the test does to them while A is stopped."""

    tenant: str
    cancelled: list[tuning_job_pb2.TuningJob] = field(default_factory=list)
    deleted: list[tuning_job_pb2.TuningJob] = field(default_factory=list)
    untouched: list[tuning_job_pb2.TuningJob] = field(default_factory=list)

    @classmethod
    def of(cls, tenant: str, jobs: list[tuning_job_pb2.TuningJob]) -> Plan:
        deleted_end = CANCELLED_PER_TENANT + DELETED_PER_TENANT
        return cls(
            tenant,
            jobs[:CANCELLED_PER_TENANT],
            jobs[CANCELLED_PER_TENANT:deleted_end],
            jobs[deleted_end:],
        )

    @property
    def jobs(self) -> list[tuning_job_pb2.TuningJob]:
        return self.cancelled + self.deleted + self.untouched


def job_id(name: str) -> str:
    return name.removeprefix("tuningJobs/")


@contextlib.asynccontextmanager
async def emulator_clock_following_real_time(system: System) -> AsyncIterator[None]:
    """The emulator's clock (FakeClock) kept on real time, so that a model's createTime
    and updateTime, which the reconciler's grace counts from, are when it really appeared;
    the untouched jobs' training (10 steps at 1 step/s) then ends by itself."""

    async def follow() -> None:
        while True:
            behind_s = time.time() - system.clock()
            if behind_s > 0:
                system.clock.advance(behind_s)
            await asyncio.sleep(0.05)

    task = asyncio.create_task(follow())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def create_jobs(system: System, tenant: str) -> list[tuning_job_pb2.TuningJob]:
    return [
        await system.create(tenant, display_name=f"paused-{tenant}-{n}")
        for n in range(JOBS_PER_TENANT)
    ]


async def leases_held(system: System, tenant: str, jobs: list[tuning_job_pb2.TuningJob]) -> int:
    """How many of `jobs` have a lease that has not run out (Redis's own clock)."""
    keys = Keys(system.settings.redis_key_prefix)
    seconds, micros = await system.redis.time()
    now_ms = seconds * 1000 + micros // 1000
    held = 0
    for job in jobs:
        until = await system.redis.hget(keys.job(tenant, job_id(job.name)), "lease_until")
        held += until is not None and int(until) > now_ms
    return held


async def states(system: System, tenant: str, jobs: list[tuning_job_pb2.TuningJob]) -> list[int]:
    return [(await system.get(job.name, tenant)).state for job in jobs]


async def side_effect_requests(system: System) -> dict[str, int]:
    return {route: await system.upstream_requests(route) for route in SIDE_EFFECTS}


async def live_models(system: System, tenant: str) -> set[str]:
    """The tenant's live tuned models, as the tenant itself lists them upstream."""
    async with httpx.AsyncClient(base_url=system.emulator_url) as http:
        token = await http.post("/token", data=token_form(system.tenants[tenant]))
        token.raise_for_status()
        headers = {"authorization": f"Bearer {token.json()['access_token']}"}
        answer = await http.get("/v1beta/tunedModels", params={"pageSize": 100}, headers=headers)
        answer.raise_for_status()
        return {model["name"] for model in answer.json().get("tunedModels", [])}


async def logged(path: Path, *phrases: str) -> int:
    """How many lines of the log at `path` contain any of `phrases`."""
    text = await asyncio.to_thread(path.read_text)
    return sum(any(p in line for p in phrases) for line in text.splitlines())


async def wait_until(check: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> float:
    """Poll `check` until True; the seconds it took. Fails the test with `what` if not."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s):
            while not await check():  # noqa: ASYNC110 (polling is the point)
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"not within {timeout_s:.0f}s: {what}")
    return time.monotonic() - started


async def stall_worker_a(system: System) -> tuple[Child, Plan, Plan]:
    """Start A and catch it with team-b's visits waiting for a token and team-a's creates
    on their way; SIGSTOP it there, every lease held. A's plans: (team-a, team-b)."""
    await system.inject_faults({"route": "oauth.token", "latency_s": TOKEN_STALL_S})
    team_b = Plan.of("team-b", await create_jobs(system, "team-b"))
    worker_a = await system.worker_process(**WORKER_SETTINGS, reconcile_interval_s=0)

    async def team_b_waits_for_its_token() -> bool:
        creating = await states(system, "team-b", team_b.jobs)
        return await system.upstream_requests("oauth.token") >= 1 and all(
            s == State.CREATING for s in creating
        )

    await wait_until(team_b_waits_for_its_token, 5.0, "A took team-b's jobs")
    await system.inject_faults(
        {"route": "tunedModels.create", "latency_s": CREATE_HOLD_S, "times": JOBS_PER_TENANT}
    )
    team_a = Plan.of("team-a", await create_jobs(system, "team-a"))

    async def team_a_creates_sent() -> bool:
        return await system.upstream_requests("tunedModels.create") >= JOBS_PER_TENANT

    await wait_until(team_a_creates_sent, TOKEN_STALL_S - 1, "A sent team-a's creates")
    worker_a.process.send_signal(signal.SIGSTOP)
    return worker_a, team_a, team_b


async def test_a_worker_paused_while_its_jobs_are_cancelled_leaves_nothing_behind(
    api_only: System,
) -> None:
    system = api_only
    async with emulator_clock_following_real_time(system):
        await _scenario(system)


async def _scenario(system: System) -> None:
    worker_a, team_a, team_b = await stall_worker_a(system)
    plans = (team_a, team_b)
    resumed = False
    try:
        for plan in plans:
            assert await leases_held(system, plan.tenant, plan.jobs) == JOBS_PER_TENANT
        assert await system.upstream_requests("tunedModels.create") == JOBS_PER_TENANT
        assert (await system.upstream_stats())["creates"] == 0  # held by the emulator

        # While A is stopped: cancel and delete through the API.
        cancel_sent: dict[str, float] = {}
        for plan in plans:
            for job in plan.cancelled:
                answer = await system.cancel(job.name, plan.tenant)
                cancel_sent[job.name] = time.monotonic()
                assert answer.state == State.CANCELLING  # CREATING: confirmed upstream later
            for job in plan.deleted:
                await system.delete(job.name, plan.tenant)
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await system.get(job.name, plan.tenant)
                assert caught.value.code() == grpc.StatusCode.NOT_FOUND

        b_started = time.monotonic()
        worker_b = await system.worker_process(**WORKER_SETTINGS, reconcile_interval_s=1.0)
        b_ready_s = time.monotonic() - b_started
        cancel_took = await _cancels_completed(system, plans, cancel_sent)
        await _deleted_cleaned_up(system, plans, CANCEL_BOUND_S)
        await _untouched_running(system, plans)
        # A stays stopped past its token's answer and its held creates: when it resumes,
        # its token is there and its create requests have long been answered (or timed out).
        left_s = TOKEN_STALL_S + 0.5 - (time.monotonic() - b_started)
        await asyncio.sleep(max(0.0, left_s))
        before_resume = await side_effect_requests(system)

        worker_a.process.send_signal(signal.SIGCONT)
        resumed = True
        resumed_at = time.monotonic()
        lease_lines = ("lease taken over", "lease lost")
        await wait_until(
            lambda: _at_least(logged(worker_a.log_path, *lease_lines), 1),
            10.0,
            "A, resumed, noticed its leases were gone",
        )

        expected = {
            plan.tenant: {j.name.replace("tuningJobs/", "tunedModels/tj-") for j in plan.untouched}
            for plan in plans
        }
        untouched_models = await _untouched_model_names(system, plans)

        async def only_untouched_left() -> bool:
            return all(
                [await live_models(system, p.tenant) == untouched_models[p.tenant] for p in plans]
            )

        reconciled_s = await wait_until(
            only_untouched_left, RECONCILE_BOUND_S, "the reconciler left only untouched models"
        )
        # One more complete pass of B's after that: nothing comes back.
        pass_line = "reconciler pass done"
        passes = await logged(worker_b.log_path, pass_line)
        await wait_until(
            lambda: _at_least(logged(worker_b.log_path, pass_line), passes + 2),
            10.0,
            "B made two more reconciler passes",
        )
        stats = await system.upstream_stats()
        after = await side_effect_requests(system)
        a_log = await asyncio.to_thread(worker_a.log_path.read_text)
        b_log = await asyncio.to_thread(worker_b.log_path.read_text)
    finally:
        if not resumed:
            worker_a.process.send_signal(signal.SIGCONT)

    a_lease_lines = sum(a_log.count(p) for p in lease_lines)
    report: dict[str, object] = {
        "b_ready_s": round(b_ready_s, 2),
        "cancel_took_s": sorted(round(s, 2) for s in cancel_took.values()),
        "reconciled_after_resume_s": round(time.monotonic() - resumed_at, 2),
        "reconcile_wait_s": round(reconciled_s, 2),
        "stats": stats,
        "reconciler_deleted": b_log.count("reconciler: deleted"),
        "a_lease_lines": a_lease_lines,
    }
    print("paused-worker soak:", report)

    # Every cancel completed within the bound.
    assert max(cancel_took.values()) <= CANCEL_BOUND_S, report
    # Exactly one create per job with a model (team-a's six held creates; the two
    # untouched jobs'), none for team-b's cancelled or deleted jobs: see the docstring.
    assert stats["creates"] == JOBS_PER_TENANT + len(team_b.untouched), report
    assert stats["creates"] <= 2 * JOBS_PER_TENANT, report
    # A, resumed, sent no side effect at all.
    assert after == before_resume, (before_resume, after, report)
    assert a_lease_lines >= 1, report
    # No live model of a cancelled or deleted job; the untouched jobs keep theirs.
    assert untouched_models == expected, report
    assert stats["models"] == len(team_a.untouched) + len(team_b.untouched), report
    # No job went backwards.
    for plan in plans:
        assert set(await states(system, plan.tenant, plan.cancelled)) == {State.CANCELLED}
        assert set(await states(system, plan.tenant, plan.untouched)) <= {
            State.RUNNING,
            State.SUCCEEDED,
        }
        for job in plan.deleted:
            assert await system.store.read(plan.tenant, job_id(job.name)) is None


async def _at_least(count: Awaitable[int], wanted: int) -> bool:
    return await count >= wanted


async def _cancels_completed(
    system: System, plans: tuple[Plan, ...], sent: dict[str, float]
) -> dict[str, float]:
    """Wait (bounded) until every cancelled job is CANCELLED; how long each one took from
    its CancelTuningJob call to the first Get that saw it CANCELLED."""
    took: dict[str, float] = {}

    async def all_cancelled() -> bool:
        for plan in plans:
            for job in plan.cancelled:
                if job.name in took:
                    continue
                state = (await system.get(job.name, plan.tenant)).state
                assert state in {State.CANCELLING, State.CANCELLED}, (job.name, state)
                if state == State.CANCELLED:
                    took[job.name] = time.monotonic() - sent[job.name]
        return len(took) == len(sent)

    first_sent = min(sent.values())
    bound_left = CANCEL_BOUND_S - (time.monotonic() - first_sent)
    await wait_until(all_cancelled, bound_left, f"every cancel within {CANCEL_BOUND_S}s")
    return took


async def _deleted_cleaned_up(system: System, plans: tuple[Plan, ...], timeout_s: float) -> None:
    """Wait until every deleted job's record is removed (its clean-up upstream done)."""

    async def removed() -> bool:
        for plan in plans:
            for job in plan.deleted:
                if await system.store.read(plan.tenant, job_id(job.name)) is not None:
                    return False
        return True

    await wait_until(removed, timeout_s, "every deleted job cleaned up")


async def _untouched_running(system: System, plans: tuple[Plan, ...]) -> None:
    async def running() -> bool:
        for plan in plans:
            found = await states(system, plan.tenant, plan.untouched)
            if not set(found) <= {State.RUNNING, State.SUCCEEDED}:
                return False
        return True

    await wait_until(running, 10.0, "B submitted the untouched jobs")


async def _untouched_model_names(system: System, plans: tuple[Plan, ...]) -> dict[str, set[str]]:
    return {
        plan.tenant: {(await system.get(j.name, plan.tenant)).tuned_model for j in plan.untouched}
        for plan in plans
    }
