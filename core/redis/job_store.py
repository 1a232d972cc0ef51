"""The job store: job records in Redis, written only by compare-and-set.

Every write names the version it read; a write against a newer version is a
`Conflict` and the caller re-reads and re-applies its change (`JobStore.update`).
Workers also present their lease epoch, the fencing token `acquire` handed them: once
another worker has taken the lease over, the old holder's writes are refused inside
Redis (`LeaseLost`), whatever that worker believes about its lease.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

from core.domain import events as job_events
from core.domain.job import Job
from core.domain.quotas import TenantQuotas
from core.domain.states import JobState
from core.domain.usage import (
    USAGE_RETENTION_S,
    UsageField,
    estimated_training_tokens,
    month_of,
    next_month_start_s,
    used_fraction,
)
from core.errors import (
    AlreadyExists,
    Conflict,
    CreateQuotaSpent,
    LeaseHeld,
    LeaseLost,
    Reason,
    TrainingBudgetSpent,
    ValidateQuotaSpent,
)
from core.redis.client import Redis, text, translated_errors
from core.redis.keys import Keys
from core.redis.scripts import (
    Scripts,
    acquire_call,
    create_call,
    hold_call,
    release_call,
    remove_call,
    save_call,
    token_bucket_call,
)
from core.redis.storage import stored_bytes_exceeded
from core.redis.tombstones import MAX_TOMBSTONES
from core.runtime.clock import Clock, system_clock

log = logging.getLogger(__name__)

MAX_CAS_ATTEMPTS = 20
STALLED = "STALLED"
"""The count, beside the states' in `Keys.tenant_state_counts`, of stalled jobs."""


@dataclass(frozen=True)
class Versioned:
    """A job as read, with the version a compare-and-set must name."""

    job: Job
    version: int


class Created(NamedTuple):
    """What `JobStore.create` stored or found, and its 1-based queue position (0: none)."""

    job: Job
    created: bool
    queue_position: int


@dataclass(frozen=True)
class Lease:
    """A worker's hold on one job; `epoch` is its fencing token, `lease_s` how long each
    taking or renewal of it lasts."""

    tenant: str
    job_id: str
    epoch: int
    lease_s: float
    deliveries: int = 1


class JobStore:
    """Reads and writes job records of all tenants."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        clock: Clock = system_clock,
        *,
        max_events: int = job_events.DEFAULT_MAX_EVENTS,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._clock = clock
        self._max_events = max_events
        self._scripts = Scripts(redis)

    async def create(
        self,
        job: Job,
        examples: bytes,
        *,
        quotas: TenantQuotas | None = None,
        training_characters: int = 0,
    ) -> Created:
        """Store a new job; if its id exists, return that job (a client retry).

        The tenant's create quota is a token bucket in the tenant's hash slot, spent by the
        CREATE script in the same step that stores a new job, so a client's retry of a
        request that already made its job costs no token. A new job spends one token of
        `quotas` (None: no limit); CreateQuotaSpent, with the wait, if there is none. Its
        examples count against the tenant's stored bytes until the upstream has them:
        StorageQuotaExceeded if they would pass `quotas.max_stored_bytes`.
        Raises AlreadyExists when the existing job came from a different request, or when
        the id is tombstoned (core.redis.tombstones: a job of that id was deleted).

        A new job is counted in its tenant's usage of this month (core.domain.usage), its
        tokens estimated from its examples' `training_characters`, in the same step: a
        retry is not counted again. TrainingBudgetSpent if they would take the month past
        `quotas.training_token_budget`; a create that takes it past the budget's warning
        fraction is logged (`_warn_near_budget`).
        """
        keys, tenant, now = self._keys, job.tenant, self._clock()
        estimate = estimated_training_tokens(training_characters, job.hyperparameters.epoch_count)
        budget = 0 if quotas is None else int(quotas.training_token_budget)
        call = create_call(
            job_key=keys.job(tenant, job.id),
            data_key=keys.job_data(tenant, job.id),
            index_key=keys.tenant_index(tenant),
            seq_key=keys.tenant_seq(tenant),
            active_key=keys.tenant_active(tenant),
            queue_key=keys.tenant_queue(tenant),
            bucket_key=keys.tenant_create_bucket(tenant),
            storage_key=keys.tenant_storage(tenant),
            tombstones_key=keys.tenant_tombstones(tenant),
            request_hash=job.request_hash,
            doc=job.to_json(),
            state=job.state.value,
            examples=examples,
            job_id=job.id,
            creates_per_s=0.0 if quotas is None else quotas.creates_per_s,
            create_burst=1 if quotas is None else max(quotas.create_burst, 1),
            max_stored_bytes=0 if quotas is None else quotas.max_stored_bytes,
            counts_key=keys.tenant_state_counts(tenant),
            counted=counted_state(job),
            usage_key=keys.tenant_usage(tenant, month_of(now)),
            example_count=job.example_count,
            estimated_tokens=estimate,
            budget_tokens=budget,
            usage_ttl_ms=USAGE_RETENTION_S * 1000,
        )
        reply = await self._scripts.run(call)
        if reply[0] == 1:
            if quotas is not None:
                _warn_near_budget(tenant, quotas, used=int(reply[2]), added=estimate)
            return Created(job, True, int(reply[1]))
        if reply[0] == -1 and quotas is not None:
            raise _create_quota_spent(tenant, quotas, wait_ms=int(reply[1]))
        if reply[0] == -2 and quotas is not None:
            raise stored_bytes_exceeded(tenant, quotas)
        if reply[0] == -4:
            raise _budget_spent(tenant, budget, used=int(reply[1]), requested=estimate, now=now)
        if reply[0] == -3:
            raise AlreadyExists(
                "request_id made a job that was deleted; use a new request_id",
                reason=Reason.REQUEST_ID_REUSED,
            )
        if text(reply[1]) != job.request_hash:
            raise AlreadyExists(
                "request_id was already used for a different job; "
                "use a new request_id for a new job",
                reason=Reason.REQUEST_ID_REUSED,
            )
        return Created(Job.from_json(reply[2]), False, int(reply[3]))

    async def check_training_budget(
        self, job: Job, quotas: TenantQuotas, *, training_characters: int
    ) -> None:
        """TrainingBudgetSpent if `create` would refuse `job` for its tenant's monthly
        budget now; counts nothing (validate_only)."""
        budget = int(quotas.training_token_budget)
        if budget <= 0:
            return
        now = self._clock()
        estimate = estimated_training_tokens(training_characters, job.hyperparameters.epoch_count)
        key = self._keys.tenant_usage(job.tenant, month_of(now))
        with translated_errors():
            raw = await self._redis.hget(key, UsageField.ESTIMATED_TRAINING_TOKENS)
        used = int(raw or 0)
        if used + estimate > budget:
            raise _budget_spent(job.tenant, budget, used=used, requested=estimate, now=now)

    async def check_create_quota(self, tenant: str, quotas: TenantQuotas) -> None:
        """CreateQuotaSpent if `create` would be refused now; spends nothing (validate_only)."""
        key = self._keys.tenant_create_bucket(tenant)
        wait_ms = await self._bucket(key, quotas.creates_per_s, quotas.create_burst, take=False)
        if wait_ms < 0:
            raise _create_quota_spent(tenant, quotas, wait_ms=-wait_ms)

    async def spend_validate_quota(self, tenant: str, quotas: TenantQuotas) -> None:
        """Spend a token of the tenant's `validate_only` bucket (its own, not the create
        quota's); ValidateQuotaSpent, with the wait, if there is none. A rate of 0: no limit."""
        if quotas.validates_per_minute <= 0:
            return
        key = self._keys.tenant_validate_bucket(tenant)
        wait_ms = await self._bucket(key, quotas.validates_per_s, quotas.validate_burst, take=True)
        if wait_ms < 0:
            raise ValidateQuotaSpent(
                tenant, per_minute=quotas.validates_per_minute, retry_after_s=-wait_ms / 1000
            )

    async def _bucket(self, key: str, per_s: float, burst: int, *, take: bool) -> int:
        """A tenant's bucket, never waited for: 0 if a token is there (taken if `take`),
        else minus the ms until one is."""
        call = token_bucket_call(
            bucket_key=key, rate_per_s=per_s, burst=max(burst, 1), max_wait_ms=0, take=take
        )
        return int(await self._scripts.run(call))

    async def read(self, tenant: str, job_id: str) -> Versioned | None:
        """The job with its version, including a deleted one awaiting clean-up."""
        with translated_errors():
            fields = await self._redis.hmget(self._keys.job(tenant, job_id), ["doc", "version"])
        doc, version = fields[0], fields[1]
        if doc is None or version is None:
            return None
        return Versioned(Job.from_json(doc), int(version))

    async def get(self, tenant: str, job_id: str) -> Job | None:
        """The job as callers see it: None if it does not exist or was deleted."""
        found = await self.read(tenant, job_id)
        if found is None or found.job.deleted:
            return None
        return found.job

    async def page(
        self, tenant: str, *, before_seq: int | None, count: int
    ) -> list[tuple[int, Job | None]]:
        """Up to `count` index entries, newest first, before sequence `before_seq`.

        The job is None where the record vanished between the two reads.
        """
        high: Any = "+inf" if before_seq is None else f"({before_seq}"
        index = self._keys.tenant_index(tenant)
        with translated_errors():
            ids = cast(
                list[tuple[bytes, float]],
                await self._redis.zrevrangebyscore(
                    index, high, "-inf", start=0, num=count, withscores=True
                ),
            )
            async with self._redis.pipeline(transaction=False) as pipe:
                for job_id, _ in ids:
                    pipe.hget(self._keys.job(tenant, text(job_id)), "doc")
                docs = await pipe.execute()
        return [
            (int(seq), None if doc is None else Job.from_json(doc))
            for (_, seq), doc in zip(ids, docs, strict=True)
        ]

    async def save(
        self, current: Versioned, new: Job, *, lease: Lease | None = None, release: bool = False
    ) -> Versioned:
        """Write `new` if the record is still at `current.version` (and the lease holds);
        with `release`, give the lease back in the same step (a visit's last write). What
        the change is, as events (core.domain.events), is written with it; so, at the save
        that first stores the job SUCCEEDED, are its billable tokens, in its tenant's usage
        of this month (core.domain.usage)."""
        now = self._clock()
        new = new.replace(update_time=now)
        keys, tenant = self._keys, new.tenant
        events = [e.to_json() for e in job_events.between(current.job, new, now)]
        call = save_call(
            job_key=keys.job(tenant, new.id),
            index_key=keys.tenant_index(tenant),
            active_key=keys.tenant_active(tenant),
            queue_key=keys.tenant_queue(tenant),
            running_key=keys.tenant_running(tenant),
            data_key=keys.job_data(tenant, new.id),
            storage_key=keys.tenant_storage(tenant),
            ended_key=keys.tenant_ended(tenant),
            counts_key=keys.tenant_state_counts(tenant),
            fetched_key=keys.tenant_fetched(tenant),
            expected_version=current.version,
            epoch=None if lease is None else lease.epoch,
            doc=new.to_json(),
            state=new.state.value,
            unindex=new.deleted and not current.job.deleted,
            job_id=new.id,
            needs_worker=new.needs_worker,
            ended=new.deleted or new.state.terminal,
            finished_ms=_finished_ms(new),
            counted=counted_state(new),
            fetched_ms=_fetched_ms(new),
            release=release and lease is not None,
            drop_data=new.deleted,
            events_key=keys.job_events(tenant, new.id),
            stall=STALLED if new.stalled_since is not None and counted_state(new) else "",
            max_events=self._max_events,
            usage_key=keys.tenant_usage(tenant, month_of(now)),
            billable_tokens=_billable_tokens(new),
            usage_ttl_ms=USAGE_RETENTION_S * 1000,
            events=events,
        )
        reply = await self._scripts.run(call)
        return _saved(reply, new)

    async def update(
        self,
        tenant: str,
        job_id: str,
        change: Callable[[Job], Job | None],
        *,
        lease: Lease | None = None,
        read: Versioned | None = None,
        release_if: Callable[[Job], bool] | None = None,
    ) -> Job | None:
        """Apply `change` to the latest record, re-reading and re-applying on conflicts.

        `change` returns the new job, or None to leave the record as it is. Returns the
        job as stored, or None if it does not exist.

        With a `lease`, the record is read by `hold`, so even a change that writes nothing
        proves the lease: a worker that lost it meets LeaseLost instead of going on as if
        its change had been made.

        `read` is the record as the caller last read it (at its version): the first
        attempt writes against it without reading again, saving a round trip; the write
        is fenced and compared all the same. With a `lease`, `release_if` says of the job
        as it ends up whether to give the lease back: with the write, or after it if
        nothing is written (a visit's last step).
        """

        def releases(job: Job) -> bool:
            return lease is not None and release_if is not None and release_if(job)

        for _ in range(MAX_CAS_ATTEMPTS):
            current, read = read or await self._reread(tenant, job_id, lease), None
            if current is None:
                return None
            new = change(current.job)
            if new is None or new == current.job:
                if releases(current.job) and lease and not await self.release(lease):
                    raise _lease_lost(job_id)
                return current.job
            try:
                return (await self.save(current, new, lease=lease, release=releases(new))).job
            except Conflict:
                continue
        raise Conflict(f"job {job_id} changed {MAX_CAS_ATTEMPTS} times during one update")

    async def _reread(self, tenant: str, job_id: str, lease: Lease | None) -> Versioned | None:
        if lease is None:
            return await self.read(tenant, job_id)
        return await self.hold(lease, lease.lease_s)

    async def acquire(
        self, tenant: str, job_id: str, lease_s: float
    ) -> tuple[Lease, Versioned] | None:
        """Take the job's lease; None if the job is gone. Raises LeaseHeld if taken."""
        call = acquire_call(job_key=self._keys.job(tenant, job_id), lease_ms=int(lease_s * 1000))
        reply = await self._scripts.run(call)
        if reply is None:
            return None
        if reply[0] == 0:
            raise LeaseHeld(f"another worker holds the lease of job {job_id}")
        lease = Lease(tenant, job_id, int(reply[0]), lease_s, deliveries=int(reply[3]))
        return lease, Versioned(Job.from_json(reply[2]), int(reply[1]))

    async def hold(self, lease: Lease, lease_s: float) -> Versioned | None:
        """Prove the lease is still ours and extend it by `lease_s`; the job as it is now.

        One round trip, so a worker can re-read the job just before an upstream side
        effect and decide again. None if the job is gone; LeaseLost if another worker has
        taken the lease over.
        """
        call = hold_call(
            job_key=self._keys.job(lease.tenant, lease.job_id),
            epoch=lease.epoch,
            lease_ms=int(lease_s * 1000),
        )
        reply = await self._scripts.run(call)
        if reply is None:
            return None
        if reply[0] == 0:
            raise _lease_lost(lease.job_id)
        return Versioned(Job.from_json(reply[2]), int(reply[1]))

    async def renew(self, lease: Lease, lease_s: float) -> bool:
        """Extend the lease; False if another worker has taken it over (or the job is gone)."""
        try:
            return await self.hold(lease, lease_s) is not None
        except LeaseLost:
            return False

    async def release(self, lease: Lease, *, finished: bool = True) -> bool:
        """Give the lease back; False if it was no longer ours.

        `finished` says the visit ended normally, which resets the delivery count.
        """
        call = release_call(
            job_key=self._keys.job(lease.tenant, lease.job_id),
            epoch=lease.epoch,
            finished=finished,
        )
        reply = await self._scripts.run(call)
        return bool(reply)

    async def queued_ids(self, tenant: str) -> list[str]:
        """Ids of the tenant's jobs waiting for admission, oldest first."""
        with translated_errors():
            members: list[Any] = await self._redis.zrange(self._keys.tenant_queue(tenant), 0, -1)
        return [text(m) for m in members]

    async def active_ids(self, tenant: str) -> list[str]:
        """Ids of the tenant's jobs that still need a worker."""
        with translated_errors():
            members = await self._redis.smembers(self._keys.tenant_active(tenant))
        return sorted(text(m) for m in members)

    async def state_counts(self, tenant: str) -> dict[JobState, int]:
        """How many of the tenant's unfinished, not deleted jobs are in each state (a state
        with none is left out), in one read however many jobs there are: CREATE, SAVE and
        REMOVE keep the counts as they write (COUNT_STEP in core.redis.scripts). A job
        stored before the counts existed is counted from its next save."""
        with translated_errors():
            raw: dict[Any, Any] = await self._redis.hgetall(self._keys.tenant_state_counts(tenant))
        states = {s.value for s in JobState}
        return {JobState(text(k)): int(n) for k, n in raw.items() if text(k) in states}

    async def stalled_count(self, tenant: str) -> int:
        """How many of the tenant's unfinished jobs are stalled (kept by SAVE and REMOVE
        beside the state counts, under STALLED)."""
        with translated_errors():
            raw = await self._redis.hget(self._keys.tenant_state_counts(tenant), STALLED)
        return int(raw or 0)

    async def oldest_fetch(self, tenant: str) -> float | None:
        """The oldest `status_fetch_time` (s) of the tenant's RUNNING, not deleted jobs;
        None when none has one."""
        with translated_errors():
            first: list[Any] = await self._redis.zrange(
                self._keys.tenant_fetched(tenant), 0, 0, withscores=True
            )
        return float(first[0][1]) / 1000 if first else None

    async def queue_depth(self, tenant: str) -> int:
        """How many of the tenant's jobs wait for admission."""
        with translated_errors():
            depth: Any = await self._redis.zcard(self._keys.tenant_queue(tenant))
        return int(depth)

    async def oldest_queued_id(self, tenant: str) -> str | None:
        """The id of the tenant's job that has waited longest for admission; None if none."""
        with translated_errors():
            head: list[Any] = await self._redis.zrange(self._keys.tenant_queue(tenant), 0, 0)
        return text(head[0]) if head else None

    async def examples(self, tenant: str, job_id: str) -> bytes | None:
        with translated_errors():
            data = await self._redis.get(self._keys.job_data(tenant, job_id))
        return cast(bytes | None, data)

    async def ended_before(self, tenant: str, before_s: float, count: int) -> list[str]:
        """Up to `count` ids of finished, not deleted jobs that ended before `before_s`."""
        ended_key = self._keys.tenant_ended(tenant)
        with translated_errors():
            members: list[Any] = await self._redis.zrangebyscore(
                ended_key, "-inf", f"({int(before_s * 1000)}", start=0, num=count
            )
        return [text(m) for m in members]

    async def forget_ended(self, tenant: str, job_id: str) -> None:
        """Take a job whose record is gone out of the ended set."""
        with translated_errors():
            await self._redis.zrem(self._keys.tenant_ended(tenant), job_id)

    async def remove(self, lease: Lease, *, retired: bool = False) -> bool:
        """Delete the job and its data for good; False if the lease was lost.

        A job removed because its caller deleted it leaves a tombstone (core.redis.tombstones);
        one `retired` by retention leaves none, since its model upstream is kept.
        """
        keys, tenant, job_id = self._keys, lease.tenant, lease.job_id
        call = remove_call(
            job_key=keys.job(tenant, job_id),
            data_key=keys.job_data(tenant, job_id),
            index_key=keys.tenant_index(tenant),
            active_key=keys.tenant_active(tenant),
            queue_key=keys.tenant_queue(tenant),
            running_key=keys.tenant_running(tenant),
            storage_key=keys.tenant_storage(tenant),
            ended_key=keys.tenant_ended(tenant),
            tombstones_key=keys.tenant_tombstones(tenant),
            counts_key=keys.tenant_state_counts(tenant),
            fetched_key=keys.tenant_fetched(tenant),
            events_key=keys.job_events(tenant, job_id),
            epoch=lease.epoch,
            job_id=job_id,
            tombstone_ms=0 if retired else max(int(self._clock() * 1000), 1),
            max_tombstones=MAX_TOMBSTONES,
        )
        reply = await self._scripts.run(call)
        return bool(reply)


def _billable_tokens(job: Job) -> int:
    """What a SUCCEEDED job's save counts as its billable training tokens (SAVE counts
    them once, at the save that first finds it SUCCEEDED): the upstream's count, or 0."""
    if job.state != JobState.SUCCEEDED or job.data_stats is None:
        return 0
    return max(job.data_stats.billable_tokens, 0)


def _budget_spent(
    tenant: str, budget: int, *, used: int, requested: int, now: float
) -> TrainingBudgetSpent:
    """The refusal of a job past its tenant's budget, retried when the month ends."""
    wait_s = max(next_month_start_s(now) - now, 1.0)
    return TrainingBudgetSpent(
        tenant, budget=budget, used=used, requested=requested, retry_after_s=wait_s
    )


def _warn_near_budget(tenant: str, quotas: TenantQuotas, *, used: int, added: int) -> None:
    """Log the create that takes the tenant's month past its budget's warning fraction
    (once a month: only the create that crosses it)."""
    budget = quotas.training_token_budget
    if budget <= 0:
        return
    threshold = budget * quotas.budget_warning_fraction
    if used - added < threshold <= used:
        log.warning(
            "tenant %s has used %d of its %d estimated training tokens this month (%.0f%%)",
            tenant,
            used,
            budget,
            100 * used_fraction(used, budget),
        )


def _create_quota_spent(tenant: str, quotas: TenantQuotas, *, wait_ms: int) -> CreateQuotaSpent:
    return CreateQuotaSpent(
        tenant, per_minute=quotas.creates_per_minute, retry_after_s=wait_ms / 1000
    )


def counted_state(job: Job) -> str:
    """The state a job counts under in its tenant's state counts (`Keys.tenant_state_counts`,
    kept by the scripts): its state while it is unfinished and not deleted, else '' (not
    counted)."""
    if job.deleted or job.state.terminal:
        return ""
    return job.state.value


def _fetched_ms(job: Job) -> int:
    """A counted RUNNING job's `status_fetch_time` (ms), its score in the fetched set
    (`Keys.tenant_fetched`); 0 keeps any other job out of it."""
    if counted_state(job) != JobState.RUNNING or job.status_fetch_time is None:
        return 0
    return max(int(job.status_fetch_time * 1000), 1)


def _finished_ms(job: Job) -> int:
    """When a finished, not deleted job is saved (ms, by this process's clock rather than
    the upstream's `end_time`), for the ended set; 0 for any other job."""
    if job.deleted or not job.state.terminal:
        return 0
    return max(int(job.update_time * 1000), 1)


def _saved(reply: int, new: Job) -> Versioned:
    if reply == -1:
        raise Conflict(f"job {new.id} no longer exists")
    if reply == -2:
        raise _lease_lost(new.id)
    if reply == -3:
        raise Conflict(f"job {new.id} changed since it was read")
    return Versioned(new, int(reply))


def _lease_lost(job_id: str) -> LeaseLost:
    return LeaseLost(f"lease on job {job_id} was taken over by another worker")
