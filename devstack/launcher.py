"""The one way to start the whole system on this machine: Redis, the emulator, the API, workers.

Two modes share this module:

- **processes**, `launch(...)`: a real redis-server and each of the emulator, the API and
  the workers its own `python -m` process, as in production, all given one `Settings`
  (through `core.runtime.settings.to_env`) and stopped with SIGTERM on exit. Used by the
  demo (`devstack/demo.py`, `python -m devstack`), the benchmarks (`bench/stack.py`), and
  the end-to-end tests' real processes (`tests/harness.py`'s `System.worker_process`, the
  API drain test in `tests/service/test_observability.py`), which start single processes
  with `Processes` against the test's own system.
- **in-process**, `tests/harness.py`'s `running_system`: the API and workers run in the
  test's event loop and the emulator in-process with a fake clock the test moves. It takes
  from here what the two modes have in common: the tenants' files (`TenantFiles`), the
  settings wired to this machine (`local_settings`) and the emulator's knobs
  (`EmulatorOptions.config`); Redis is `devstack.redis_server.RedisServer` in both.

Every process prints one ready line on stdout once it serves; `Processes` waits for it and
the `*Process.from_ready` constructors below are the only code that reads those lines.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from core.runtime.settings import Settings, to_env
from devstack.processes import Child
from devstack.redis_server import RedisServer, free_port
from devstack.tenants import PLATFORM_CREDENTIALS_FILE, LocalTenant, write_tenant_files
from emulator import EmulatorConfig, load_fault_rules, load_grants
from emulator.config import load_service_accounts

API_READY = "API_READY"
"""`API_READY port=<port>` (service/process.py)."""
WORKER_READY = "WORKER_READY"
"""`WORKER_READY pid=<pid> health_port=<port>` (worker/process.py)."""
EMULATOR_READY = "EMULATOR_READY"
"""`EMULATOR_READY <base url>` (emulator/__main__.py)."""


def ready_field(line: str, key: str) -> str:
    """The value of `key=value` in a ready line such as `API_READY port=50051`."""
    for token in line.split()[1:]:
        name, _, value = token.partition("=")
        if name == key:
            return value
    raise RuntimeError(f"no {key}= in the ready line {line!r}")


@dataclass(frozen=True)
class EmulatorOptions:
    """The emulator's knobs: its pace and its faults (`python -m emulator --help`)."""

    steps_per_second: float = 2.0
    """Simulated training speed."""
    token_ttl_s: int = 3600
    """Lifetime of the access tokens it issues."""
    rate_limit_rps: int = 0
    """Its quota: API requests admitted in any sliding second, 429 above (0: none)."""
    faults_file: Path | None = None
    """Fault rules pending from the start (the body of POST /_emulator/faults)."""
    vertex_pending_s: float = 5.0
    """How long a new Vertex AI tuning job stays PENDING."""
    head_start_steps: int = 0
    """Steps a new Gemini API tuned model has completed when it is created."""

    def args(self, grants_file: Path) -> list[str]:
        """The command line of an emulator process on a free port."""
        args = ["--port", "0", "--grants-file", str(grants_file)]
        args += ["--steps-per-second", str(self.steps_per_second)]
        args += ["--token-ttl-s", str(self.token_ttl_s)]
        args += ["--rate-limit-rps", str(self.rate_limit_rps)]
        args += ["--vertex-pending-s", str(self.vertex_pending_s)]
        args += ["--head-start-steps", str(self.head_start_steps)]
        if self.faults_file is not None:
            args += ["--faults-file", str(self.faults_file)]
        return args

    def config(self, grants_file: Path) -> EmulatorConfig:
        """The same emulator, for `emulator.running_emulator` in this process."""
        faults = load_fault_rules(self.faults_file) if self.faults_file else ()
        return EmulatorConfig(
            steps_per_second=self.steps_per_second,
            token_ttl_s=self.token_ttl_s,
            grants=load_grants(grants_file),
            service_accounts=load_service_accounts(grants_file),
            faults=faults,
            rate_limit_rps=self.rate_limit_rps,
            vertex_pending_s=self.vertex_pending_s,
            head_start_steps=self.head_start_steps,
        )


@dataclass(frozen=True)
class TenantFiles:
    """Tenants with working secrets, and the files that make them so (devstack/tenants.py)."""

    tenants: dict[str, LocalTenant]
    """By id, in the order given."""
    tenants_file: Path
    """The API's and workers' tenants file."""
    grants_file: Path
    """The emulator's grants: the tenants' OAuth credentials are valid there."""

    @classmethod
    def write(cls, directory: Path, tenants: Iterable[LocalTenant]) -> Self:
        by_id = {tenant.id: tenant for tenant in tenants}
        tenants_file, grants_file = write_tenant_files(directory, list(by_id.values()))
        return cls(by_id, tenants_file, grants_file)


LOCAL_DATASET_STORAGE = "gs://platform-datasets/uploads"
"""Where the local system keeps uploaded datasets: a bucket of the emulator's."""


def local_settings(
    base: Settings, *, redis_url: str, tenant_files: TenantFiles, emulator_url: str
) -> Settings:
    """`base` wired to this machine's Redis, tenants file and emulator, on free ports."""
    return dataclasses.replace(
        base,
        redis_url=redis_url,
        tenants_file=str(tenant_files.tenants_file),
        upstream_base_url=emulator_url,
        vertex_base_url=emulator_url,
        storage_base_url=emulator_url,
        token_uri=emulator_url + "/token",
        platform_credentials_file=str(tenant_files.tenants_file.parent / PLATFORM_CREDENTIALS_FILE),
        iam_credentials_base_url=emulator_url,
        dataset_storage=base.dataset_storage or LOCAL_DATASET_STORAGE,
        grpc_listen="127.0.0.1:0",
        worker_health_listen="127.0.0.1:0",
    )


@dataclass(frozen=True)
class EmulatorProcess:
    child: Child
    url: str

    @classmethod
    def from_ready(cls, child: Child) -> Self:
        return cls(child, child.ready_line.split()[1])


@dataclass(frozen=True)
class ApiProcess:
    child: Child
    port: int

    @classmethod
    def from_ready(cls, child: Child) -> Self:
        return cls(child, int(ready_field(child.ready_line, "port")))

    @property
    def target(self) -> str:
        """The gRPC target to dial."""
        return f"127.0.0.1:{self.port}"


@dataclass(frozen=True)
class WorkerProcess:
    child: Child
    health_port: int

    @classmethod
    def from_ready(cls, child: Child) -> Self:
        return cls(child, int(ready_field(child.ready_line, "health_port")))

    @property
    def pid(self) -> int:
        return self.child.process.pid


StopReport = Callable[[Child, int], None]
"""Told of each child stopped on exit, with its exit code."""


class Processes:
    """Child processes started one by one, each awaited until its ready line; on exit all
    are stopped (SIGTERM, then SIGKILL), the last started first."""

    def __init__(self, log_dir: Path, *, on_stop: StopReport | None = None) -> None:
        self.log_dir = log_dir
        self.children: dict[str, Child] = {}
        self.metrics_urls: dict[str, str] = {}
        """/metrics of each API and worker process started with a `metrics_listen`."""
        self._on_stop = on_stop
        self._workers = 0

    @property
    def pids(self) -> dict[str, int]:
        """Process ids by name: `emulator`, `api`, `worker0`, ..."""
        return {name: child.process.pid for name, child in self.children.items()}

    async def start(
        self,
        name: str,
        module: str,
        *,
        ready: str,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> Child:
        """`python -m module args`, logging to `log_dir/<name>.log`, once it printed `ready`."""
        if name in self.children:
            raise ValueError(f"a process named {name!r} was already started")
        child = await Child.spawn(name, module, args=args, env=env or {}, log_dir=self.log_dir)
        self.children[name] = child  # stopped on exit even if it never gets ready
        await child.wait_ready(ready)
        return child

    async def start_emulator(
        self, options: EmulatorOptions, *, grants_file: Path, name: str = "emulator"
    ) -> EmulatorProcess:
        child = await self.start(
            name, "emulator", ready=EMULATOR_READY, args=options.args(grants_file)
        )
        return EmulatorProcess.from_ready(child)

    async def start_api(self, settings: Settings, *, name: str = "api") -> ApiProcess:
        child = await self.start(name, "service", ready=API_READY, env=self._env(name, settings))
        return ApiProcess.from_ready(child)

    async def start_worker(self, settings: Settings, *, name: str = "") -> WorkerProcess:
        """A worker process; unnamed ones are `worker0`, `worker1`, ... in start order."""
        name = name or f"worker{self._workers}"
        self._workers += 1
        child = await self.start(name, "worker", ready=WORKER_READY, env=self._env(name, settings))
        return WorkerProcess.from_ready(child)

    def _env(self, name: str, settings: Settings) -> dict[str, str]:
        if settings.metrics_listen:
            self.metrics_urls[name] = f"http://{settings.metrics_listen}/metrics"
        return to_env(settings)

    async def aclose(self) -> None:
        """Stop every child, the last started first."""
        for child in reversed(list(self.children.values())):
            code = await child.stop()
            if self._on_stop is not None:
                self._on_stop(child, code)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


@dataclass(frozen=True)
class LocalSystem:
    """A running system of processes, as `launch` yields it."""

    settings: Settings
    """What every API and worker process got, each with its own `metrics_listen`."""
    tenant_files: TenantFiles
    api: ApiProcess
    emulator: EmulatorProcess
    workers: list[WorkerProcess]
    """The workers `launch` started (`start_worker` adds none here)."""
    processes: Processes
    serve_metrics: bool

    @property
    def work_dir(self) -> Path:
        """The tenants' files and one log per process."""
        return self.processes.log_dir

    @property
    def api_target(self) -> str:
        return self.api.target

    @property
    def emulator_url(self) -> str:
        return self.emulator.url

    @property
    def redis_url(self) -> str:
        return self.settings.redis_url

    @property
    def tenant(self) -> LocalTenant:
        """The first tenant given to `launch`."""
        return next(iter(self.tenant_files.tenants.values()))

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """gRPC call metadata authenticating as `tenant`."""
        return self.metadata_of(self.tenant.id)

    def metadata_of(self, tenant: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.tenant_files.tenants[tenant].token}"),)

    @property
    def pids(self) -> dict[str, int]:
        """Process ids by name: `emulator`, `api`, `worker0`, ..."""
        return self.processes.pids

    @property
    def metrics_urls(self) -> dict[str, str]:
        """/metrics of each API and worker process by name (none unless `serve_metrics`)."""
        return self.processes.metrics_urls

    async def start_worker(self, *, name: str = "", **overrides: Any) -> WorkerProcess:
        """One more worker process, its settings these with `overrides`; it is stopped on
        the system's exit, or earlier by `.child.stop()`."""
        settings = dataclasses.replace(self.settings, **overrides)
        return await self.processes.start_worker(_metrics(settings, self.serve_metrics), name=name)


def _metrics(settings: Settings, serve: bool) -> Settings:
    """`settings` with a /metrics address of its own on a free port, or with none."""
    listen = f"127.0.0.1:{free_port()}" if serve else ""
    return dataclasses.replace(settings, metrics_listen=listen)


@asynccontextmanager
async def launch(
    *,
    tenants: Sequence[LocalTenant],
    settings: Settings | None = None,
    emulator: EmulatorOptions | None = None,
    workers: int = 1,
    work_dir: Path | None = None,
    serve_metrics: bool = False,
    on_stop: StopReport | None = None,
) -> AsyncIterator[LocalSystem]:
    """Redis, the emulator, the API and `workers` workers, each a real process; all
    stopped on exit, Redis last.

    `settings` (default `Settings()`) is what the API and every worker get, wired by
    `local_settings` to this Redis, emulator and tenants file; `tenants` (at least one,
    the first is `LocalSystem.tenant`) get working secrets in `work_dir` (default: a
    temporary directory, removed on exit), which also holds one log per process. With
    `serve_metrics` each API and worker process serves /metrics on a free port of its own.
    `on_stop` hears of each process stopped on exit.
    """
    if not tenants:
        raise ValueError("launch needs at least one tenant")
    async with AsyncExitStack() as exits:
        if work_dir is None:
            work_dir = Path(exits.enter_context(tempfile.TemporaryDirectory(prefix="tuning-")))
        files = TenantFiles.write(work_dir, tenants)
        redis = exits.enter_context(RedisServer())
        processes = await exits.enter_async_context(Processes(work_dir, on_stop=on_stop))
        upstream = await processes.start_emulator(
            emulator or EmulatorOptions(), grants_file=files.grants_file
        )
        wired = local_settings(
            settings or Settings(),
            redis_url=redis.url,
            tenant_files=files,
            emulator_url=upstream.url,
        )
        wired = _metrics(wired, serve=False)  # each process gets its own address, or none
        api = await processes.start_api(_metrics(wired, serve_metrics))
        started = [
            await processes.start_worker(_metrics(wired, serve_metrics)) for _ in range(workers)
        ]
        yield LocalSystem(wired, files, api, upstream, started, processes, serve_metrics)
