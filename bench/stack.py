"""The system under measurement: real processes, as in production, on this machine."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from core.runtime.settings import Settings, to_env
from devstack.processes import Child, start_module
from devstack.redis_server import RedisServer
from devstack.tenants import LocalTenant, write_tenant_files

TENANT = "bench-team"


@dataclass(frozen=True)
class BenchStack:
    api_target: str
    emulator_url: str
    settings: Settings
    tenant: LocalTenant
    work_dir: Path

    others: dict[str, LocalTenant] = dataclasses.field(default_factory=dict)
    pids: dict[str, int] = dataclasses.field(default_factory=dict)
    """Process ids by name: `api`, `emulator`, `worker0`, ..."""

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.tenant.token}"),)

    def metadata_of(self, tenant: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.others[tenant].token}"),)


@asynccontextmanager
async def bench_stack(
    *,
    workers: int = 0,
    extra_tenants: list[str] | None = None,
    emulator_args: tuple[str, ...] = ("--steps-per-second", "1"),
    **overrides: object,
) -> AsyncIterator[BenchStack]:
    """Redis, the emulator, the API and `workers` workers, each its own process.

    `emulator_args` are added to the emulator's command line (its fault and pace knobs);
    `overrides` replace fields of the settings every process gets.
    """
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work_dir = Path(tmp)
        tenant = LocalTenant(TENANT)
        others = {name: LocalTenant(name) for name in extra_tenants or []}
        tenants_file, grants_file = write_tenant_files(work_dir, [tenant, *others.values()])
        async with AsyncExitStack() as stack:
            redis = stack.enter_context(RedisServer())
            emulator = await start(
                stack,
                work_dir,
                "emulator",
                "EMULATOR_READY",
                {},
                [
                    "--port",
                    "0",
                    "--grants-file",
                    str(grants_file),
                    *emulator_args,
                ],
            )
            url = emulator.ready_line.split()[1]
            settings = dataclasses.replace(
                Settings(),
                redis_url=redis.url,
                tenants_file=str(tenants_file),
                upstream_base_url=url,
                token_uri=url + "/token",
                grpc_listen="127.0.0.1:0",
                metrics_listen="",
                worker_health_listen="127.0.0.1:0",
                tenant_creates_per_minute=1e9,
                tenant_create_burst=1_000_000,
                tenant_max_running=1_000_000,
            )
            settings = dataclasses.replace(settings, **overrides)  # type: ignore[arg-type]
            env = to_env(settings) | {"TUNING_LOG_LEVEL": "WARNING"}
            api = await start(stack, work_dir, "service", "API_READY", env, [])
            pids = {"api": api.process.pid, "emulator": emulator.process.pid}
            for n in range(workers):
                worker = await start(
                    stack, work_dir, "worker", "WORKER_READY", env, [], name=f"worker{n}"
                )
                pids[f"worker{n}"] = worker.process.pid
            port = api.ready_line.split("port=")[1]
            yield BenchStack(f"127.0.0.1:{port}", url, settings, tenant, work_dir, others, pids)


async def start(  # noqa: PLR0917
    stack: AsyncExitStack,
    work_dir: Path,
    module: str,
    ready: str,
    env: dict[str, str],
    args: list[str],
    *,
    name: str = "",
) -> Child:
    child = await start_module(name or module, module, args, env, work_dir)
    stack.push_async_callback(child.stop)
    await child.wait_ready(ready)
    return child
