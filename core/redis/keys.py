"""Every Redis key name, built here and nowhere else.

Redis Cluster runs a Lua script only if all its keys hash to one slot, so the keys
one script touches share a hash tag: everything about a tenant's jobs carries
`{t.<tenant>}`, and the fleet-wide schedule (with the upstream budget its claims
spend) carries its own tag. No script touches keys of two tags.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """Key names under one deployment's `prefix`."""

    prefix: str = "tj"

    def _tenant(self, tenant: str) -> str:
        return f"{self.prefix}:{{t.{tenant}}}"

    def tenant_scoped_prefix(self) -> str:
        """What every tenant's keys start with (the near cache tracks writes under it)."""
        return f"{self.prefix}:{{t."

    def job(self, tenant: str, job_id: str) -> str:
        """Hash: the job's control fields (state, version, epoch, lease_until) and `doc`."""
        return f"{self._tenant(tenant)}:job:{job_id}"

    def job_events(self, tenant: str, job_id: str) -> str:
        """Stream: the job's events (core.domain.events), the newest TUNING_JOB_MAX_EVENTS;
        field `e`, each an event's JSON. Written by SAVE, dropped by REMOVE."""
        return f"{self._tenant(tenant)}:events:{job_id}"

    def job_data(self, tenant: str, job_id: str) -> str:
        """String: the training examples, kept until the upstream has them."""
        return f"{self._tenant(tenant)}:data:{job_id}"

    def dataset(self, tenant: str, dataset_id: str) -> str:
        """Hash: a dataset's `doc` (metadata, statistics, warnings), the `file` holding its
        examples (a `gs://` URI) and that file's `size` (bytes)."""
        return f"{self._tenant(tenant)}:dataset:{dataset_id}"

    def tenant_discarded_files(self, tenant: str) -> str:
        """Set: `gs://` URIs of the tenant's files nothing needs any more (deleted datasets,
        jobs' copies once submitted or deleted), which workers delete."""
        return f"{self._tenant(tenant)}:discarded-files"

    def tenant_datasets(self, tenant: str) -> str:
        """Sorted set: the tenant's dataset ids scored by `tenant_seq`, for newest-first paging."""
        return f"{self._tenant(tenant)}:datasets"

    def tenant_dataset_use(self, tenant: str) -> str:
        """Sorted set: the tenant's dataset ids scored by their upload or last use by a
        create (ms since the epoch), for retention."""
        return f"{self._tenant(tenant)}:dataset-use"

    def tenant_storage(self, tenant: str) -> str:
        """Hash: what the tenant stores, against its storage quotas: `datasets` (count) and
        `bytes` (examples of its datasets and of its jobs not yet submitted)."""
        return f"{self._tenant(tenant)}:storage"

    def tenant_ended(self, tenant: str) -> str:
        """Sorted set: the tenant's finished (not deleted) job ids scored by when they ended
        (ms since the epoch), for retention."""
        return f"{self._tenant(tenant)}:ended"

    def tenant_tombstones(self, tenant: str) -> str:
        """Sorted set: ids of the tenant's jobs removed after the caller deleted them, scored
        by when (ms since the epoch), until the reconciler confirms that no model of theirs
        is left upstream (worker.reconciler); a tombstoned id cannot be created again."""
        return f"{self._tenant(tenant)}:tombstones"

    def tenant_credential(self, tenant: str) -> str:
        """Hash: the tenant's OAuth credential sealed with AES-GCM, and its metadata."""
        return f"{self._tenant(tenant)}:credential"

    def tenant_credential_version(self, tenant: str) -> str:
        """String: the version of the tenant's latest credential write (or delete), never
        lowered; a sealed record older than it was restored over a newer one."""
        return f"{self._tenant(tenant)}:credential-version"

    def tenant_index(self, tenant: str) -> str:
        """Sorted set: job ids scored by a per-tenant sequence, for newest-first paging."""
        return f"{self._tenant(tenant)}:index"

    def tenant_active(self, tenant: str) -> str:
        """Set: ids of the tenant's jobs that still need a worker (unfinished, or deleted
        and not yet cleaned up). The reconciliation sweep re-schedules from it."""
        return f"{self._tenant(tenant)}:active"

    def tenant_queue(self, tenant: str) -> str:
        """Sorted set: the tenant's jobs waiting for admission, in arrival order."""
        return f"{self._tenant(tenant)}:queue"

    def tenant_running(self, tenant: str) -> str:
        """Set: the tenant's admitted, unfinished jobs (counted against its running quota)."""
        return f"{self._tenant(tenant)}:running"

    def tenant_state_counts(self, tenant: str) -> str:
        """Hash: state name -> how many of the tenant's unfinished, not deleted jobs are in
        that state, kept by the scripts that change a job's state (a field at 0 is dropped);
        the gauges read it instead of every record."""
        return f"{self._tenant(tenant)}:state-counts"

    def tenant_usage(self, tenant: str, month: str) -> str:
        """Hash: the tenant's usage in one UTC month ("YYYY-MM"), fields named by
        core.domain.usage.UsageField, counted by the scripts at each event (CREATE, SAVE,
        GENERATE_SETTLE); expires USAGE_RETENTION_S after its last write."""
        return f"{self._tenant(tenant)}:usage:{month}"

    def tenant_fetched(self, tenant: str) -> str:
        """Sorted set: ids of the tenant's RUNNING, not deleted jobs scored by their
        `status_fetch_time` (ms since the epoch), for the status cache age gauge."""
        return f"{self._tenant(tenant)}:fetched"

    def tenant_alias(self, tenant: str, alias_id: str) -> str:
        """Hash: an alias's current revision (`revision`, `target`, `canary_target`,
        `canary_percent`, `update_ms`, `update_principal`), `create_ms` and its `seq`
        in `tenant_aliases` (core.redis.aliases)."""
        return f"{self._tenant(tenant)}:alias:{alias_id}"

    def tenant_aliases(self, tenant: str) -> str:
        """Sorted set: the tenant's alias ids scored by `tenant_seq`, for newest-first
        paging (and the count behind the per-tenant cap)."""
        return f"{self._tenant(tenant)}:aliases"

    def tenant_alias_revisions(self, tenant: str, alias_id: str) -> str:
        """Sorted set: an alias's kept revisions (JSON records) scored by revision number."""
        return f"{self._tenant(tenant)}:alias-revisions:{alias_id}"

    def audit_records(self, principal: str) -> str:
        """Stream: the audit trail of one tenant (or of one admin, for its calls that act
        on no tenant), field `r` each a record's JSON (core.redis.audit), trimmed to
        TUNING_AUDIT_MAX_RECORDS and TUNING_AUDIT_RETENTION_S. In a tag of its own, not
        the tenant's: writes under the tenant's tag reach every replica's near cache."""
        return f"{self.prefix}:{{a.{principal}}}:audit"

    def _project(self, project: str) -> str:
        return f"{self.prefix}:{{p.{project}}}"

    def project_running(self, project: str) -> str:
        """Set: `tenant/job_id` of the jobs holding one of a Vertex AI project's slots
        (core.redis.project_slots)."""
        return f"{self._project(project)}:running"

    def project_waiting(self, project: str) -> str:
        """Sorted set: `tenant/job_id` of the jobs waiting for a slot of a Vertex AI project,
        scored by when each first asked (microseconds since the epoch, unique): the
        project's line."""
        return f"{self._project(project)}:waiting"

    def admission_ring(self) -> str:
        """Sorted set: tenants with queued jobs, scored by when they were last served (in
        the schedule's slot, so that a claim can tell a worker whether any wait)."""
        return f"{self.prefix}:{{schedule}}:admission-ring"

    def tenant_create_bucket(self, tenant: str) -> str:
        """Hash: the token bucket of the tenant's create quota (in its slot, so the create
        script can spend it)."""
        return f"{self._tenant(tenant)}:create-bucket"

    def tenant_validate_bucket(self, tenant: str) -> str:
        """Hash: the token bucket of the tenant's `validate_only` creates (apart from its
        create quota, so dry runs neither spend it nor go unbounded)."""
        return f"{self._tenant(tenant)}:validate-bucket"

    def tenant_generate_requests(self, tenant: str) -> str:
        """Hash: the token bucket of the tenant's generate calls per minute (fields `tokens`,
        `ts`; core.redis.inference_quota)."""
        return f"{self._tenant(tenant)}:generate-requests"

    def tenant_generate_tokens(self, tenant: str) -> str:
        """Hash: the token bucket of the tenant's generate tokens per minute, in tokens
        (below zero: a debt its past answers ran up)."""
        return f"{self._tenant(tenant)}:generate-tokens"

    def tenant_generate_calls(self, tenant: str) -> str:
        """Sorted set: ids of the tenant's generate calls in flight, scored by when each
        stops counting (ms since the epoch), so a dead replica's calls expire."""
        return f"{self._tenant(tenant)}:generate-calls"

    def upstream_hold_off(self, upstream: str) -> str:
        """String with a TTL: while it exists, generate calls to `upstream` (the Gemini API
        for one tenant, or a Vertex AI project's location; service.inference_limits) are
        not sent, the upstream having answered 429. In its own slot: no script joins it
        with a tenant's keys."""
        return f"{self.prefix}:{{u.{upstream}}}:hold-off"

    def tenant_seq(self, tenant: str) -> str:
        """Counter behind `tenant_index`, `tenant_datasets` and `tenant_aliases` scores
        (unique, so page cursors never tie)."""
        return f"{self._tenant(tenant)}:seq"

    def schedule(self) -> str:
        """Sorted set: `tenant/job_id` of jobs with work a caller waits on (a create, a
        cancel, a delete, anything but a poll), scored by when it is due (ms)."""
        return f"{self.prefix}:{{schedule}}:due"

    def poll_schedule(self) -> str:
        """Sorted set: `tenant/job_id` of jobs whose next visit is a status poll, scored by
        when it is due (ms); handed out only as the upstream budget allows."""
        return f"{self.prefix}:{{schedule}}:polls"

    def upstream_bucket(self) -> str:
        """Hash: the fleet-wide token bucket of upstream requests (in the schedule's slot,
        so that a claim can spend it on the polls it hands out)."""
        return f"{self.prefix}:{{schedule}}:upstream-bucket"

    def reconciler_lock(self) -> str:
        """String: the random token of the worker running the reconciler's pass (SET NX PX;
        worker.reconciler), so that one pass runs at a time across the fleet."""
        return f"{self.prefix}:{{reconciler}}:lock"

    def page_token_key(self) -> str:
        """String: the 32-byte secret every API replica signs page tokens with (created once
        with SET NX; service.listing)."""
        return f"{self.prefix}:{{meta}}:page-token-key"
