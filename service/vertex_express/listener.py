"""The facade's listener: started with the API process, stopped with it."""

from __future__ import annotations

from aiohttp import web

from core.runtime.metrics import Metrics
from core.runtime.settings import Settings
from core.security.tenants import TenantDirectory
from service.audit import AuditTrail
from service.generation import GenerationApi
from service.jobs_api import JobsApi
from service.message_limits import MessageLimits
from service.refusal_brake import RefusalBrake
from service.status import StatusReader
from service.tls import ssl_context
from service.vertex_express.facade import ExpressFacade
from service.vertex_express.server import ExpressApp


class ExpressServer:
    """A running facade: `port` is the bound port; `stop` drains it."""

    def __init__(self, runner: web.AppRunner, port: int) -> None:
        self._runner = runner
        self.port = port

    async def stop(self) -> None:
        """Stop listening, give requests in flight the runner's grace (TUNING_GRPC_GRACE_S,
        as the gRPC server's) to finish, then close every connection."""
        await self._runner.cleanup()


async def start_express(
    settings: Settings,
    tenants: TenantDirectory,
    jobs: JobsApi,
    status: StatusReader,
    generation: GenerationApi,
    *,
    metrics: Metrics | None = None,
    brake: RefusalBrake | None = None,
    audit: AuditTrail | None = None,
    limits: MessageLimits | None = None,
) -> ExpressServer:
    """Serve the facade on `settings.express_listen` (`host:port`, port 0: any); its
    requests counted in `metrics`, braked by `brake` and its creates and cancels recorded in
    `audit`, and its bodies charged to the receive budget of `limits`, as the gRPC API's
    RPCs are."""
    app = ExpressApp(
        ExpressFacade(jobs, status, generation),
        tenants,
        settings,
        metrics=metrics,
        brake=brake,
        audit=audit,
        limits=limits,
    )
    runner = web.AppRunner(
        app.application(),
        access_log=None,
        handle_signals=False,
        shutdown_timeout=settings.grpc_grace_s,
    )
    await runner.setup()
    host, port = split_address(settings.express_listen)
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context(settings))
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1]
    return ExpressServer(runner, int(bound))


def split_address(address: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` as (host, port)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"configuration error: TUNING_EXPRESS_LISTEN {address!r} is not host:port")
    return host.strip("[]"), int(port)
