"""The schedule: when a worker should next look at each unfinished job.

Two sorted sets hold every job that still needs work, scored by the time (ms, Redis
clock) it is next due, in one of two lanes. The work lane holds jobs whose next visit is
work a caller waits on (a create, a cancel, a delete, a job just woken by a caller); the
poll lane holds jobs whose next visit is a status poll. `claim` hands due members to a
worker and pushes their due time a lease ahead in the same atomic step, so a member whose
worker dies comes due again by itself: nothing is lost, and nobody waits on a dead worker
longer than the lease. Whether the worker may then act is decided by the job's own lease
(core.redis.job_store).

A claim hands out due work first, then due polls, each poll only with a token of the
fleet's upstream budget taken in the same step (the bucket lives in the schedule's hash
slot for this). So polls pace themselves to the budget: with N jobs to watch and a budget
of B requests a second, polls beyond it stay due, oldest first, and each job is polled
about every N / B seconds however often it asked to be; nothing queues for tokens inside
a worker, and a create or a cancel never waits behind a backlog of polls. A visit's
prepaid token is spent by its first upstream request (core.redis.token_bucket.prepaid).

A worker sends the reschedules of its finished visits with its next claim (`Moves`): one
round trip instead of one per visit. A reschedule never undoes a wake: a member due in the
work lane when its visit's reschedule arrives was woken by a caller meanwhile, and stays due.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

from core.redis.client import Redis, text
from core.redis.keys import Keys
from core.redis.scripts import (
    PollBudget,
    Scripts,
    claim_due_call,
    due_in_call,
    ensure_due_call,
)

NO_BUDGET = PollBudget(bucket_key="", rate_per_s=0.0, burst=1, wait_ms=0)


def member(tenant: str, job_id: str) -> str:
    return f"{tenant}/{job_id}"


def parse_member(raw: bytes | str) -> tuple[str, str]:
    tenant, _, job_id = text(raw).partition("/")
    return tenant, job_id


class Claimed(NamedTuple):
    """A job handed to a worker, and when (monotonic s) its prepaid upstream token may be
    used (None: no token was taken for it)."""

    tenant: str
    job_id: str
    token_at_s: float | None


class Moves:
    """Reschedules decided by finished visits, waiting to go with the worker's next claim.

    Each is kept with the moment it was decided, so that the delay sent is what is left of
    it; a later decision about the same job replaces an earlier one.
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._pending: dict[str, tuple[float, float | None, bool]] = {}

    def add(self, tenant: str, job_id: str, delay_s: float | None, *, poll: bool) -> None:
        """Due `delay_s` from now, in the poll lane if `poll`; None: out of the schedule."""
        self._pending[member(tenant, job_id)] = (self._monotonic(), delay_s, poll)

    def __len__(self) -> int:
        return len(self._pending)

    def take(self) -> list[tuple[str, int, bool]]:
        """The pending moves as (member, delay_ms or -1, to the poll lane), emptied."""
        now = self._monotonic()
        moves = [
            (m, -1 if delay_s is None else max(0, int((at + delay_s - now) * 1000)), poll)
            for m, (at, delay_s, poll) in self._pending.items()
        ]
        self._pending.clear()
        return moves

    def put_back(self, moves: list[tuple[str, int, bool]]) -> None:
        """Moves whose claim failed, kept for the next one (newer decisions win)."""
        now = self._monotonic()
        for m, delay_ms, poll in moves:
            delay_s = None if delay_ms < 0 else delay_ms / 1000
            self._pending.setdefault(m, (now, delay_s, poll))


class Schedule:
    """Due times of unfinished jobs, shared by all workers; `budget` is what a claim
    spends on the polls it hands out (NO_BUDGET: polls are free)."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        budget: PollBudget = NO_BUDGET,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._work_key = keys.schedule()
        self._polls_key = keys.poll_schedule()
        self._ring_key = keys.admission_ring()
        self.tenants_waiting = True
        """Whether the latest claim saw tenants waiting for admission (True before any)."""
        self._budget = budget
        self._monotonic = monotonic
        self._scripts = Scripts(redis)

    async def due_in(
        self,
        tenant: str,
        job_id: str,
        delay_s: float,
        *,
        poll: bool = False,
        only_if_present: bool = False,
    ) -> None:
        """Make the job due `delay_s` from now (Redis time), in the poll lane if `poll`.

        With `only_if_present`, only a scheduled job moves, within its lane."""
        call = due_in_call(
            work_key=self._work_key,
            polls_key=self._polls_key,
            member=member(tenant, job_id),
            delay_ms=int(delay_s * 1000),
            poll=poll,
            only_if_present=only_if_present,
        )
        await self._scripts.run(call)

    async def claim(self, count: int, lease_s: float, moves: Moves | None = None) -> list[Claimed]:
        """Apply `moves`, then hand out up to `count` due jobs, each pushed `lease_s` ahead
        in the same step; and note whether tenants wait for admission (`tenants_waiting`).
        A failed claim keeps the moves for the next one."""
        pending = moves.take() if moves is not None else []
        call = claim_due_call(
            work_key=self._work_key,
            polls_key=self._polls_key,
            ring_key=self._ring_key,
            count=count,
            lease_ms=int(lease_s * 1000),
            budget=self._budget,
            moves=pending,
        )
        try:
            reply = await self._scripts.run(call)
        except BaseException:
            if moves is not None:
                moves.put_back(pending)
            raise
        got_at = self._monotonic()  # The moments were set a little before: err late.
        self.tenants_waiting = int(reply[0]) > 0
        handed = reply[1:]
        return [
            Claimed(*parse_member(raw), None if wait_ms < 0 else got_at + wait_ms / 1000)
            for raw, wait_ms in zip(handed[::2], map(int, handed[1::2]), strict=True)
        ]

    async def ensure(self, tenant: str, job_ids: list[str]) -> int:
        """Schedule, due now, each of the jobs that is not scheduled; how many were missing."""
        if not job_ids:
            return 0
        call = ensure_due_call(
            work_key=self._work_key,
            polls_key=self._polls_key,
            members=[member(tenant, j) for j in job_ids],
        )
        return int(await self._scripts.run(call))

    async def remove(self, tenant: str, job_id: str) -> None:
        call = due_in_call(
            work_key=self._work_key,
            polls_key=self._polls_key,
            member=member(tenant, job_id),
            delay_ms=-1,
            poll=False,
            only_if_present=False,
        )
        await self._scripts.run(call)
