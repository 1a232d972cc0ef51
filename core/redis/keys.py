"""Every Redis key name, built here and nowhere else.

Redis Cluster runs a Lua script only if all its keys hash to one slot, so the keys
one script touches share a hash tag: everything about a tenant's jobs carries
`{t.<tenant>}`, and the fleet-wide schedule carries its own tag. No script touches
keys of two tags.
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

    def job_data(self, tenant: str, job_id: str) -> str:
        """String: the training examples, kept until the upstream has them."""
        return f"{self._tenant(tenant)}:data:{job_id}"

    def dataset(self, tenant: str, dataset_id: str) -> str:
        """Hash: a dataset's `doc` (metadata, statistics, warnings) and its `examples`."""
        return f"{self._tenant(tenant)}:dataset:{dataset_id}"

    def tenant_credential(self, tenant: str) -> str:
        """Hash: the tenant's OAuth credential sealed with AES-GCM, and its metadata."""
        return f"{self._tenant(tenant)}:credential"

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

    def admission_ring(self) -> str:
        """Sorted set: tenants with queued jobs, scored by when they were last served."""
        return f"{self.prefix}:{{admission}}:tenants"

    def tenant_create_bucket(self, tenant: str) -> str:
        """Hash: the token bucket of the tenant's create quota (in its slot, so the create
        script can spend it)."""
        return f"{self._tenant(tenant)}:create-bucket"

    def tenant_seq(self, tenant: str) -> str:
        """Counter behind `tenant_index` scores (unique, so page cursors never tie)."""
        return f"{self._tenant(tenant)}:seq"

    def rate_limit(self, name: str) -> str:
        """Hash: a fleet-wide token bucket."""
        return f"{self.prefix}:{{rate.{name}}}:bucket"

    def schedule(self) -> str:
        """Sorted set: `tenant/job_id` scored by when a worker should next look at it (ms)."""
        return f"{self.prefix}:{{schedule}}:due"
