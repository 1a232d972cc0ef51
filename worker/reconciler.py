"""The reconciler: delete what the platform left upstream for jobs that no longer want it.

A worker paused past its lease (SIGSTOP, a long GC, a VM migration) can create a job's
tuned model after the job was cancelled, failed or deleted, and a clean-up can fail for
good; nothing in a job's own life would ever delete that model. So, every
`reconcile_interval_s`, a worker lists what the platform made upstream (the provider's
`list_owned`: on the Gemini API, the `tunedModels` named `tj-<job id>`), tenant by tenant
(a Vertex AI tenant's main project, then each of its quota pools) with each tenant's own
credential, and decides about each by its job alone (`decide`):

- Kept: the job is unfinished, or deleted and not yet cleaned up (its worker will), or
  SUCCEEDED (the model is what the tenant asked for), or CANCELLED while the operator keeps
  cancelled models (`delete_cancelled_models` off: the reconciler keeps them too, so that
  the setting means one thing whether the worker's cancel or the reconciler came last).
- Deleted: the job is CANCELLED (when cancelled models are deleted) or FAILED; or it was
  deleted and removed (its id is tombstoned, core.redis.tombstones); or it is unknown.
- Unknown is not "retired": retention removes a finished job's record but keeps its model
  (worker.retention). A model with no record and no tombstone is therefore deleted only if
  the upstream made it within `job_retention_s` (no job ended that recently can have been
  retired, since a model is made before its job ends); an older one is taken for a
  retained success and kept. With retention off (0) no record is ever retired, so every
  model without a record is unknown.
- Another tenant's: tenants tuning in one Vertex AI project (decision 24) see each other's
  tuning jobs in a listing. A resource labelled with another tenant
  (`OwnedResource.tenant`), or one without that label whose job has no record and no
  tombstone here but a record under another tenant, is that tenant's, and is kept: its
  own pass decides.
- Grace: nothing is deleted until `reconcile_grace_s` has passed since the model last
  changed upstream and since its job ended (or was removed). A model a stale worker just
  made waits out the grace, by which time that worker's fence has long expired; the grace
  must exceed the job lease by far.

Tombstones are dropped here: one older than the grace whose job has no model in a
complete listing of its tenant is confirmed, and dropped; a tenant whose listing the pass
could not finish keeps all of its tombstones.

One pass at a time in the fleet: a pass runs only while its worker holds the fleet lock
(core.redis.lock), and its upstream requests run inside a fence made from that lock's
lease (worker.fence), moved forward at every renewal. The lock is renewed before each
upstream request once half its lease is spent; a renewal that fails loses the fence and
ends the pass before anything more is sent, and the HTTP client refuses a side effect once
the fence may have expired. After a pass the holder keeps the lock for `rest_s` (the
interval, when run on the schedule), so the fleet as a whole makes about one pass per
interval, not one per worker. Each pass is bounded: at most `reconcile_pages_per_pass`
pages listed and `reconcile_deletes_per_pass` deletes, and its requests go through the
fleet's shared upstream rate limiter like every other.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from core.domain.job import Job
from core.domain.states import JobState
from core.errors import CredentialError, LeaseLost, Retryable, TuningError, UpstreamError
from core.redis.job_store import JobStore
from core.redis.lock import FleetLock
from core.redis.tombstones import MAX_TOMBSTONES, Tombstones
from core.runtime.clock import Clock
from core.runtime.metrics import Metrics
from core.runtime.settings import Settings
from core.security.token_source import TokenSource
from worker import fence
from worker.provider import OwnedResource, TuningProvider

log = logging.getLogger(__name__)

PAGE_SIZE = 100
"""Resources asked for per listing request."""
LOCK_LEASE_S = 60.0
"""The fleet lock's lease while a pass runs; renewed once half of it is spent."""


class Outcome(StrEnum):
    """What the reconciler did with one resource upstream (the metric's `outcome`)."""

    DELETED = "deleted"
    KEPT_ACTIVE = "kept_active"
    """Its job is unfinished, or deleted and awaiting its worker's clean-up."""
    KEPT_SUCCEEDED = "kept_succeeded"
    KEPT_CANCELLED = "kept_cancelled"
    """Its job was cancelled and `delete_cancelled_models` is off."""
    KEPT_RETIRED = "kept_retired"
    """No record and no tombstone, made before the job retention period: a retained success."""
    IN_GRACE = "in_grace"
    DEFERRED = "deferred"
    """To be deleted, but the pass had spent its deletes."""
    DELETE_FAILED = "delete_failed"
    KEPT_OTHER_TENANT = "kept_other_tenant"
    """Its job is another tenant's: tenants tuning in one project see each other's tuning
    jobs, and only the job's own tenant's pass may decide about it."""


class PassResult(StrEnum):
    """How a pass ended (the metric's `result`)."""

    DONE = "done"
    CAPPED = "capped"
    """The pass listed its most pages before the end of the listing."""
    PARTIAL = "partial"
    """A tenant's listing failed, or the worker was stopping."""
    SKIPPED = "skipped"
    """Another worker held the lock (or had just made a pass)."""
    LOCK_LOST = "lock_lost"


@dataclass(frozen=True)
class Policy:
    """What the reconciler deletes, when, and how much per pass."""

    grace_s: float
    job_retention_s: float
    delete_cancelled_models: bool
    pages_per_pass: int
    deletes_per_pass: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            grace_s=settings.reconcile_grace_s,
            job_retention_s=settings.job_retention_s,
            delete_cancelled_models=settings.delete_cancelled_models,
            pages_per_pass=settings.reconcile_pages_per_pass,
            deletes_per_pass=settings.reconcile_deletes_per_pass,
        )


@dataclass
class PassReport:
    """What one pass found and did."""

    result: PassResult = PassResult.DONE
    pages: int = 0
    outcomes: collections.Counter[Outcome] = field(default_factory=collections.Counter)
    tombstones_dropped: int = 0


@dataclass
class _Run:
    """One pass in progress: its lock token, the fence of the lock's lease, the worker's
    stop event and what the pass has done so far."""

    token: str
    fence: fence.Fence
    stop: asyncio.Event
    report: PassReport

    def should_stop(self, pages_per_pass: int) -> bool:
        """True, with the result set, once the pass must end before its next request."""
        if self.stop.is_set():
            self.report.result = PassResult.PARTIAL
        elif self.report.pages >= pages_per_pass:
            self.report.result = PassResult.CAPPED
        else:
            return False
        return True


def decide(
    resource: OwnedResource, job: Job | None, removed_at: float | None, now: float, policy: Policy
) -> Outcome:
    """What to do with `resource`, given its job's record (None: none) and the time its
    job was removed after a delete (None: no tombstone). The rules: the module docstring."""
    if job is not None:
        return _decide_recorded(resource, job, now, policy)
    if removed_at is not None:
        return _after_grace(now, policy, resource.update_time, removed_at)
    retired_before = now - policy.job_retention_s
    if policy.job_retention_s > 0 and resource.create_time <= retired_before:
        return Outcome.KEPT_RETIRED
    return _after_grace(now, policy, resource.update_time)


def _decide_recorded(resource: OwnedResource, job: Job, now: float, policy: Policy) -> Outcome:
    if job.needs_worker:
        return Outcome.KEPT_ACTIVE
    if job.state == JobState.SUCCEEDED:
        return Outcome.KEPT_SUCCEEDED
    if job.state == JobState.CANCELLED and not policy.delete_cancelled_models:
        return Outcome.KEPT_CANCELLED
    ended = job.end_time or job.update_time
    return _after_grace(now, policy, resource.update_time, ended)


def _after_grace(now: float, policy: Policy, *times: float) -> Outcome:
    return Outcome.DELETED if now >= max(times) + policy.grace_s else Outcome.IN_GRACE


class Reconciler:
    """Runs reconciler passes: list what the platform owns upstream, delete the leftovers."""

    def __init__(  # noqa: PLR0917 (the pass's collaborators, each one of a kind)
        self,
        store: JobStore,
        tombstones: Tombstones,
        lock: FleetLock,
        providers_of: Callable[[str], Sequence[TuningProvider]],
        auth_for: Callable[[str], TokenSource],
        tenants: Callable[[], Iterable[str]],
        clock: Clock,
        policy: Policy,
        *,
        metrics: Metrics | None = None,
        lease_s: float = LOCK_LEASE_S,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self._store = store
        self._tombstones = tombstones
        self._lock = lock
        # By tenant: where it has things upstream now (a Vertex AI tenant: its main project
        # and each of its quota pools).
        self._providers_of = providers_of
        self._auth_for = auth_for
        self._tenants = tenants  # asked at every pass: the tenants file can change
        self._clock = clock
        self._policy = policy
        self._metrics = metrics
        self._lease_s = lease_s
        self._page_size = page_size

    async def run(self, stop: asyncio.Event, interval_s: float) -> None:
        """A pass every `interval_s` until `stop` is set, the first one interval after the
        start (a fleet restarting does not list everything at once); a pass looks at
        `stop` before each request and ends early once it is set."""
        while not await _stopped_within(stop, interval_s):
            try:
                await self.reconcile_once(stop, rest_s=interval_s)
            except TuningError as exc:
                log.warning("reconciler pass failed: %s", exc.message)
            except Exception:  # A bug must not stop the worker: the next pass tries again.
                log.exception("reconciler pass failed")

    async def reconcile_once(
        self, stop: asyncio.Event | None = None, *, rest_s: float = 0.0
    ) -> PassReport:
        """One pass, if this worker gets the fleet lock; it keeps the lock `rest_s` after
        the pass (0: gives it back at once)."""
        sent_at = time.monotonic()
        token = await self._lock.acquire(self._lease_s)
        report = PassReport()
        if token is None:
            report.result = PassResult.SKIPPED
            self._record(report)
            return report
        held = fence.Fence.for_lease("reconciler pass", sent_at, self._lease_s)
        run = _Run(token, held, stop or asyncio.Event(), report)
        try:
            with fence.holding(held):
                await self._pass(run)
        except LeaseLost as exc:
            log.warning("reconciler: %s", exc.message)
            report.result = PassResult.LOCK_LOST
        finally:
            held.lose()
            await asyncio.shield(self._let_go(token, rest_s))
        self._record(report)
        return report

    async def _pass(self, run: _Run) -> None:
        for tenant in self._tenants():
            if run.should_stop(self._policy.pages_per_pass):
                return
            await self._reconcile_tenant(tenant, run)

    async def _reconcile_tenant(self, tenant: str, run: _Run) -> None:
        """List the tenant's owned resources in each of its upstreams, judging each page
        as it comes; drop its confirmed tombstones if every listing was complete."""
        auth, seen = self._auth_for(tenant), set[str]()
        try:
            for provider in self._providers_of(tenant):
                if not await self._list(tenant, provider, auth, seen, run):
                    return
        except CredentialError as exc:
            log.info("reconciler: tenant %s skipped: %s", tenant, exc.message)
            return
        except (UpstreamError, Retryable) as exc:
            log.warning("reconciler: tenant %s not listed: %s", tenant, exc.message)
            run.report.result = PassResult.PARTIAL
            return
        run.report.tombstones_dropped += await self._drop_confirmed(tenant, seen)

    async def _list(
        self,
        tenant: str,
        provider: TuningProvider,
        auth: TokenSource,
        seen: set[str],
        run: _Run,
    ) -> bool:
        """List one upstream page by page (job ids into `seen`); False if the pass had to
        stop before the end."""
        page_token = ""
        while True:
            if run.should_stop(self._policy.pages_per_pass):
                return False
            await self._keep(run, f"list {tenant}'s resources")
            page = await provider.list_owned(auth, page_size=self._page_size, page_token=page_token)
            run.report.pages += 1
            seen.update(r.job_id for r in page.resources)
            await self._judge(tenant, provider, auth, page.resources, run)
            page_token = page.next_page_token
            if not page_token:
                return True

    async def _judge(
        self,
        tenant: str,
        provider: TuningProvider,
        auth: TokenSource,
        resources: list[OwnedResource],
        run: _Run,
    ) -> None:
        removed = await self._tombstones.removed_at(tenant, [r.job_id for r in resources])
        for resource in resources:
            found = await self._store.read(tenant, resource.job_id)
            job = None if found is None else found.job
            tombstoned = removed.get(resource.job_id)
            if await self._another_tenants(
                tenant, resource, known=job is not None or tombstoned is not None
            ):
                run.report.outcomes[Outcome.KEPT_OTHER_TENANT] += 1
                continue
            outcome = decide(resource, job, tombstoned, self._clock(), self._policy)
            if outcome == Outcome.DELETED:
                outcome = await self._delete(tenant, provider, auth, resource, run)
            run.report.outcomes[outcome] += 1

    async def _another_tenants(self, tenant: str, resource: OwnedResource, *, known: bool) -> bool:
        """Whether the resource is another tenant's: tenants tuning in one project see each
        other's tuning jobs in a listing. Its tenant label says so; a resource made before
        that label, whose job `tenant` does not know, is another's if another tenant has a
        record of its job."""
        if resource.tenant:
            return resource.tenant != tenant
        if known:
            return False
        for other in self._tenants():
            if other != tenant and await self._store.read(other, resource.job_id) is not None:
                return True
        return False

    async def _delete(
        self,
        tenant: str,
        provider: TuningProvider,
        auth: TokenSource,
        resource: OwnedResource,
        run: _Run,
    ) -> Outcome:
        if run.report.outcomes[Outcome.DELETED] >= self._policy.deletes_per_pass:
            return Outcome.DEFERRED
        await self._keep(run, f"delete {resource.name}")
        try:
            await provider.delete_owned(auth, resource)
        except (UpstreamError, Retryable) as exc:
            log.warning("reconciler: cannot delete %s: %s", resource.name, exc.message)
            return Outcome.DELETE_FAILED
        log.info(
            "reconciler: deleted %s %s of tenant %s (job %s)",
            resource.kind,
            resource.name,
            tenant,
            resource.job_id,
        )
        return Outcome.DELETED

    async def _drop_confirmed(self, tenant: str, seen: set[str]) -> int:
        """Drop the tombstones past the grace whose job had nothing in the listing."""
        before_s = self._clock() - self._policy.grace_s
        old = await self._tombstones.removed_before(tenant, before_s, MAX_TOMBSTONES)
        confirmed = [job_id for job_id in old if job_id not in seen]
        await self._tombstones.drop(tenant, confirmed)
        return len(confirmed)

    async def _keep(self, run: _Run, action: str) -> None:
        """Before an upstream request: renew the lock once half its lease is spent, and
        stop (LeaseLost) if it is lost or the fence may have expired."""
        held = run.fence
        if not held.lost and held.remaining_s() < self._lease_s / 2:
            sent_at = time.monotonic()
            if await self._lock.renew(run.token, self._lease_s):
                held.extend(sent_at, self._lease_s)
            else:
                held.lose()
        held.check(action)

    async def _let_go(self, token: str, rest_s: float) -> None:
        """Keep the lock `rest_s` more (no pass elsewhere until then), or give it back."""
        try:
            if rest_s > 0:
                await self._lock.renew(token, rest_s)
            else:
                await self._lock.release(token)
        except TuningError as exc:  # The lock's lease runs out by itself.
            log.warning("reconciler: cannot let go of the lock: %s", exc.message)

    def _record(self, report: PassReport) -> None:
        """The pass's metrics and its one log line."""
        if self._metrics is not None:
            self._metrics.reconciler_passes.labels(report.result.value).inc()
            for outcome, count in report.outcomes.items():
                self._metrics.reconciler_models.labels(outcome.value).inc(count)
            if report.result != PassResult.SKIPPED:
                self._metrics.reconciler_last_pass.set(self._clock())
        if report.result == PassResult.SKIPPED:
            log.debug("reconciler: another worker holds the lock; no pass")
            return
        counts = ", ".join(f"{o.value} {n}" for o, n in sorted(report.outcomes.items())) or "none"
        log.info(
            "reconciler pass %s: %d pages; models: %s; tombstones dropped: %d",
            report.result.value,
            report.pages,
            counts,
            report.tombstones_dropped,
        )


async def _stopped_within(stop: asyncio.Event, wait_s: float) -> bool:
    """Wait up to `wait_s` for `stop`; whether it is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), wait_s)
    return stop.is_set()
