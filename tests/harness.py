"""The system under test, on real parts in the test's own event loop.

A real redis-server (one per session, a fresh key prefix per test), the emulator over
real HTTP with a clock the test moves, the gRPC API on a free port with a real channel,
and a worker that the test can start and stop. This is the launcher's in-process mode
(see devstack/launcher.py): tenants' files, wiring and emulator knobs come from there,
and so do the real worker processes of `System.worker_process`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
from opentelemetry.trace import TracerProvider

from core.dataset_files import DatasetLocation
from core.redis.client import Redis
from core.redis.job_store import JobStore
from core.redis.keys import Keys
from core.runtime import tracing
from core.runtime.metrics import Metrics
from core.runtime.settings import Settings
from core.security.authorized_user import CLOUD_PLATFORM_SCOPE
from core.security.crypto import new_key
from core.security.tenants import Role, TenantDirectory
from core.upstream_http import open_session
from devstack.launcher import EmulatorOptions, Processes, TenantFiles, local_settings
from devstack.processes import Child
from devstack.tenants import LocalTenant, write_keys_file
from emulator import running_emulator
from service.process import ApiServer, start_api
from tests.clocks import FakeClock
from tuning.v1 import (
    credential_service_pb2,
    credential_service_pb2_grpc,
    dataset_pb2,
    tuning_job_pb2,
    tuning_service_pb2,
    tuning_service_pb2_grpc,
)
from worker.process import WorkerWiring, build_steps, build_worker
from worker.steps import Steps
from worker.worker import Worker

State = tuning_job_pb2.TuningJob.State
TERMINAL = frozenset({State.SUCCEEDED, State.FAILED, State.CANCELLED})
BASE_MODEL = "models/gemini-1.5-flash-001-tuning"
TOKEN_TTL_S = 30 * 24 * 3600
READONLY_SCOPE = "https://www.googleapis.com/auth/generative-language.tuning.readonly"


ADMIN = "ops"
VERTEX_TENANT = "team-v"
VERTEX_PROVIDER = {
    "kind": "vertex",
    "project": "team-v-project",
    "location": "us-central1",
    "staging": "gs://team-v-tuning/platform",
}


def local_tenants() -> dict[str, LocalTenant]:
    """team-a and team-b are ordinary; team-b bills a quota project; team-ro's grant
    lacks the tuning scope (read-only), as a team that skipped the guide's step would;
    team-v tunes on Vertex AI, with a cloud-platform grant.
    `ops` is an admin: it may call the CredentialService and nothing else."""
    return {
        "team-a": LocalTenant("team-a"),
        "team-b": LocalTenant("team-b", quota_project="proj-b"),
        "team-ro": LocalTenant("team-ro", scopes=(READONLY_SCOPE,)),
        VERTEX_TENANT: LocalTenant(
            VERTEX_TENANT, scopes=(CLOUD_PLATFORM_SCOPE,), provider=VERTEX_PROVIDER
        ),
        ADMIN: LocalTenant(ADMIN, role=Role.ADMIN),
    }


def test_settings(redis_url: str, prefix: str, **overrides: Any) -> Settings:
    """Settings for a fast system: short polls, short idle waits."""
    base = Settings(
        redis_url=redis_url,
        redis_key_prefix=prefix,
        poll_min_s=0.05,
        poll_max_s=0.1,
        worker_idle_s=0.02,
        job_lease_s=5.0,
        claim_lease_s=5.0,
        retry_base_s=0.05,
        metrics_listen="",
        retry_max_s=0.2,
        validation_processes=0,  # datasets checked on a thread: no processes per test's API
    )
    return dataclasses.replace(base, **overrides)


def token_form(tenant: LocalTenant) -> dict[str, str]:
    """What google-auth posts to the token endpoint for this tenant's credential."""
    return {
        "grant_type": "refresh_token",
        "client_id": tenant.client_id,
        "client_secret": tenant.client_secret,
        "refresh_token": tenant.refresh_token,
    }


def examples(count: int = 20) -> list[tuning_job_pb2.TrainingExample]:
    return [
        tuning_job_pb2.TrainingExample(text_input=str(n), output=str(n + 1)) for n in range(count)
    ]


def job_spec(**fields: Any) -> tuning_job_pb2.TuningJob:
    """A valid job: 20 examples, 2 epochs, batch 4 -> 10 steps upstream."""
    spec = tuning_job_pb2.TuningJob(
        display_name="numbers",
        base_model=BASE_MODEL,
        hyperparameters=tuning_job_pb2.Hyperparameters(epoch_count=2, batch_size=4),
        training_examples=examples(),
    )
    for name, value in fields.items():
        if isinstance(value, dict):
            getattr(spec, name).update(value)
        elif isinstance(value, list):
            del getattr(spec, name)[:]
            getattr(spec, name).extend(value)
        elif hasattr(value, "CopyFrom"):
            getattr(spec, name).CopyFrom(value)
        else:
            setattr(spec, name, value)
    return spec


@dataclass
class System:
    """Handles on a running system."""

    settings: Settings
    redis: Redis
    api: ApiServer
    channel: grpc.aio.Channel
    stub: tuning_service_pb2_grpc.TuningServiceAsyncStub
    emulator_url: str
    clock: FakeClock
    tenants: dict[str, LocalTenant]
    tenants_file: Path
    store: JobStore
    processes: Processes
    """Real processes the test starts (`worker_process`), stopped before the rest."""
    _stack: AsyncExitStack
    api_metrics: Metrics = field(default_factory=Metrics.create)
    worker_metrics: Metrics = field(default_factory=Metrics.create)
    _workers: list[asyncio.Task[None]] = field(default_factory=list)
    _workers_stop: asyncio.Event = field(default_factory=asyncio.Event)
    _workers_clients: AsyncExitStack = field(default_factory=AsyncExitStack)

    def auth(self, tenant: str = "team-a") -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.tenants[tenant].token}"),)

    @property
    def admin_stub(self) -> credential_service_pb2_grpc.CredentialServiceAsyncStub:
        """The CredentialService on this system's channel."""
        return credential_service_pb2_grpc.CredentialServiceStub(self.channel)

    async def set_credential(
        self, tenant: str, authorized_user_json: str, *, caller: str = ADMIN
    ) -> credential_service_pb2.TenantCredential:
        request = credential_service_pb2.SetTenantCredentialRequest(
            tenant=tenant, authorized_user_json=authorized_user_json
        )
        return await self.admin_stub.SetTenantCredential(request, metadata=self.auth(caller))

    async def get_credential(
        self, tenant: str, *, caller: str = ADMIN
    ) -> credential_service_pb2.TenantCredential:
        request = credential_service_pb2.GetTenantCredentialRequest(tenant=tenant)
        return await self.admin_stub.GetTenantCredential(request, metadata=self.auth(caller))

    async def delete_credential(self, tenant: str, *, caller: str = ADMIN) -> None:
        request = credential_service_pb2.DeleteTenantCredentialRequest(tenant=tenant)
        await self.admin_stub.DeleteTenantCredential(request, metadata=self.auth(caller))

    async def create(
        self, tenant: str = "team-a", request_id: str = "", **fields: Any
    ) -> tuning_job_pb2.TuningJob:
        request = tuning_service_pb2.CreateTuningJobRequest(
            request_id=request_id, tuning_job=job_spec(**fields)
        )
        return await self.stub.CreateTuningJob(request, metadata=self.auth(tenant))

    async def upload(
        self,
        content: bytes,
        fmt: str = "JSONL",
        tenant: str = "team-a",
        *,
        chunk_bytes: int = 1000,
        **fields: Any,
    ) -> dataset_pb2.Dataset:
        """UploadDataset: the metadata message, then `content` in chunks."""
        spec = dataset_pb2.Dataset(format=dataset_pb2.Dataset.Format.Value(fmt), **fields)
        parts = [tuning_service_pb2.UploadDatasetRequest(dataset=spec)]
        parts += [
            tuning_service_pb2.UploadDatasetRequest(chunk=content[i : i + chunk_bytes])
            for i in range(0, len(content), chunk_bytes)
        ]
        return await self.stub.UploadDataset(iter(parts), metadata=self.auth(tenant))

    async def get(self, name: str, tenant: str = "team-a") -> tuning_job_pb2.TuningJob:
        request = tuning_service_pb2.GetTuningJobRequest(name=name)
        return await self.stub.GetTuningJob(request, metadata=self.auth(tenant))

    async def cancel(self, name: str, tenant: str = "team-a") -> tuning_job_pb2.TuningJob:
        request = tuning_service_pb2.CancelTuningJobRequest(name=name)
        return await self.stub.CancelTuningJob(request, metadata=self.auth(tenant))

    async def list_jobs(
        self, tenant: str = "team-a", **fields: Any
    ) -> tuning_service_pb2.ListTuningJobsResponse:
        request = tuning_service_pb2.ListTuningJobsRequest(**fields)
        return await self.stub.ListTuningJobs(request, metadata=self.auth(tenant))

    async def delete(self, name: str, tenant: str = "team-a") -> None:
        request = tuning_service_pb2.DeleteTuningJobRequest(name=name)
        await self.stub.DeleteTuningJob(request, metadata=self.auth(tenant))

    async def wait_for(
        self, name: str, states: Iterable[int], *, tenant: str = "team-a", timeout_s: float = 15.0
    ) -> tuning_job_pb2.TuningJob:
        """Poll Get until the job is in one of `states`."""
        wanted = set(states)
        async with asyncio.timeout(timeout_s):
            while True:
                job = await self.get(name, tenant)
                if job.state in wanted:
                    return job
                await asyncio.sleep(0.02)

    async def eventually(
        self, check: Callable[[], Awaitable[bool]], *, timeout_s: float = 10.0
    ) -> None:
        """Wait until `check` answers True."""
        async with asyncio.timeout(timeout_s):
            while not await check():  # noqa: ASYNC110 (polling is the point)
                await asyncio.sleep(0.02)

    async def finish_training(self, name: str, tenant: str = "team-a") -> tuning_job_pb2.TuningJob:
        """Move the emulator's clock until the job has ended upstream, then wait for it here."""
        await self.wait_for(name, {State.RUNNING, *TERMINAL}, tenant=tenant)
        self.clock.advance(3600)
        return await self.wait_for(name, TERMINAL, tenant=tenant)

    async def upstream_stats(self) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.emulator_url) as http:
            answer: dict[str, Any] = (await http.get("/_emulator/stats")).json()
            return answer

    async def stored_files(self) -> list[str]:
        """The `gs://` URIs of the platform's dataset files, as the emulator holds them."""
        async with httpx.AsyncClient(base_url=self.emulator_url) as http:
            objects = (await http.get("/_emulator/storage/objects")).json()["objects"]
        location = DatasetLocation.from_uri(self.settings.dataset_storage)
        return sorted(
            f"gs://{o['bucket']}/{o['name']}"
            for o in objects
            if o["bucket"] == location.bucket and o["name"].startswith(location.prefix + "/")
        )

    async def stored_object(self, uri: str) -> dict[str, Any]:
        """The emulator's record of the object at `uri` (size, crc32c, ...)."""
        async with httpx.AsyncClient(base_url=self.emulator_url) as http:
            objects = (await http.get("/_emulator/storage/objects")).json()["objects"]
        found: dict[str, Any] = next(o for o in objects if f"gs://{o['bucket']}/{o['name']}" == uri)
        return found

    async def upstream_requests(self, route: str) -> int:
        requests = (await self.upstream_stats())["requests"]
        return sum(n for key, n in requests.items() if key.endswith(route))

    async def inject_faults(self, *rules: dict[str, Any]) -> None:
        async with httpx.AsyncClient(base_url=self.emulator_url) as http:
            answer = await http.post("/_emulator/faults", json={"rules": list(rules)})
            answer.raise_for_status()

    async def start_worker(self, count: int = 1) -> None:
        """Start `count` more in-process workers."""
        for _ in range(count):
            worker = await _build_worker(
                self._workers_clients,
                self.settings,
                self.redis,
                self.tenants_file,
                self.worker_metrics,
            )
            self._workers.append(asyncio.create_task(worker.run(self._workers_stop, grace_s=5.0)))

    async def stop_worker(self) -> None:
        """Stop every in-process worker (SIGTERM's path: finish, release, return)."""
        self._workers_stop.set()
        await asyncio.gather(*self._workers)
        self._workers.clear()
        self._workers_stop = asyncio.Event()
        await self._workers_clients.aclose()  # only once no worker can use them

    async def worker_process(self, **overrides: Any) -> Child:
        """A real `python -m worker` process on this system's Redis and emulator, its
        settings these with `overrides`; stopped with the system if the test does not."""
        settings = dataclasses.replace(self.settings, **overrides)
        return (await self.processes.start_worker(settings)).child

    async def keys(self) -> list[bytes]:
        """Every Redis key of this test."""
        return [k async for k in self.redis.scan_iter(match=f"{self.settings.redis_key_prefix}:*")]

    async def state_keys(self) -> list[bytes]:
        """Every Redis key of this test but the audit trail's streams: those record refused
        calls too, by design (service.audit), and "a refused call writes nothing" is about
        the platform's state."""
        audit = re.compile(
            re.escape(Keys(self.settings.redis_key_prefix).audit_records("X"))
            .replace("X", ".+")
            .encode()
        )
        return [k for k in await self.keys() if not audit.fullmatch(k)]


async def build_system_steps(system: System) -> Steps:
    """A second, independent worker's steps (for races a test arranges by hand)."""
    http = await system._stack.enter_async_context(open_session(timeout_s=10.0))
    token_http = system._stack.enter_context(httpx.Client(timeout=10.0))
    tenants = TenantDirectory.watch(system.tenants_file)
    return build_steps(WorkerWiring(system.settings, system.redis, tenants, http, token_http))


async def _build_worker(
    stack: AsyncExitStack, settings: Settings, redis: Redis, tenants_file: Path, metrics: Metrics
) -> Worker:
    http = await stack.enter_async_context(open_session(timeout_s=10.0))
    token_http = stack.enter_context(httpx.Client(timeout=10.0))
    tenants = TenantDirectory.watch(tenants_file)
    return build_worker(WorkerWiring(settings, redis, tenants, http, token_http, metrics=metrics))


@asynccontextmanager
async def running_system(
    redis: Redis,
    redis_url: str,
    prefix: str,
    work_dir: Path,
    *,
    with_worker: bool = True,
    tracer_provider: TracerProvider | None = None,
    **overrides: Any,
) -> AsyncIterator[System]:
    """Start emulator, API and (unless told not to) a worker; stop them on exit.

    `tracer_provider`: trace the system with it (core.runtime.tracing; a test's own, with
    an in-memory exporter); by default tracing is off, as without an OTLP endpoint.

    The tenants file is followed as in production (`TenantDirectory.watch`); a keys file
    with one key, `k1`, seals stored credentials unless `encryption_keys_file` is given.
    """
    files = TenantFiles.write(work_dir, local_tenants().values())
    keys_file = write_keys_file(work_dir / "keys.json", [("k1", new_key())])
    overrides = {"encryption_keys_file": str(keys_file), **overrides}
    clock = FakeClock()
    async with AsyncExitStack() as stack:
        if tracer_provider is not None:
            stack.enter_context(tracing.installed(tracer_provider))
        # Tests jump the emulator's clock by hours to finish training; tokens must outlive
        # that (their expiry has tests of its own).
        emulator = EmulatorOptions(steps_per_second=1.0, token_ttl_s=TOKEN_TTL_S)
        config = emulator.config(files.grants_file)
        emulator_url = await stack.enter_async_context(running_emulator(config, clock))
        wired = local_settings(
            test_settings(redis_url, prefix),
            redis_url=redis_url,
            tenant_files=files,
            emulator_url=emulator_url,
        )
        settings = dataclasses.replace(wired, **overrides)
        token_http = stack.enter_context(httpx.Client(timeout=10.0))
        api_metrics = Metrics.create()
        api = await start_api(
            settings,
            redis,
            TenantDirectory.watch(files.tenants_file),
            listen="127.0.0.1:0",
            health_check_s=0.1,
            token_http=token_http,
            metrics=api_metrics,
        )
        stack.push_async_callback(api.stop, 1.0)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{api.port}")
        stack.push_async_callback(channel.close)
        system = System(
            settings=settings,
            redis=redis,
            api=api,
            channel=channel,
            stub=tuning_service_pb2_grpc.TuningServiceStub(channel),
            emulator_url=emulator_url,
            clock=clock,
            tenants=files.tenants,
            tenants_file=files.tenants_file,
            store=JobStore(redis, Keys(prefix)),
            processes=Processes(work_dir),
            _stack=stack,
            api_metrics=api_metrics,
        )
        stack.push_async_callback(system.stop_worker)
        stack.push_async_callback(system.processes.aclose)
        if with_worker:
            await system.start_worker()
        yield system
