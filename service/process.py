"""The API process: gRPC server with auth, health and reflection, stopped gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping

import aiohttp
import grpc
import httpx
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from core.dataset_files import DatasetFiles
from core.domain.providers import ProviderChoice, ProviderOf
from core.domain.quotas import QuotasFor
from core.redis.admission import Admission
from core.redis.aliases import AliasStore
from core.redis.audit import AuditStore
from core.redis.client import Redis, RedisEndpoints, connect
from core.redis.inference_quota import InferenceQuota
from core.redis.job_store import JobStore
from core.redis.keys import Keys
from core.redis.page_token_key import PageTokenKey
from core.redis.project_slots import ProjectSlots
from core.redis.schedule import Schedule
from core.redis.startup import RedisStartup
from core.redis.usage import UsageReader
from core.runtime import tracing
from core.runtime.clock import Clock, system_clock
from core.runtime.health import CHECK_INTERVAL_S, RedisHealth
from core.runtime.metrics import Metrics
from core.runtime.settings import Settings
from core.runtime.signals import stop_signals
from core.security.credentials import CredentialSource
from core.security.crypto import KeyRing, watch_keys
from core.security.secret_files import ReloadingFile
from core.security.tenants import TenantDirectory
from core.upstream_http import open_session
from service.alias_servicer import SERVICE as ALIAS_SERVICE
from service.alias_servicer import AliasServicer
from service.alias_servicer import generic_handler as alias_handler
from service.aliases_api import AliasesApi
from service.audit import AuditTrail
from service.audit_listing import AuditReader
from service.audit_servicer import SERVICE as AUDIT_SERVICE
from service.audit_servicer import AuditServicer
from service.audit_servicer import generic_handler as audit_handler
from service.auth import Authenticator
from service.credential_servicer import add_credential_service
from service.dataset_checker import DatasetChecker
from service.dataset_store import DatasetStore
from service.datasets_api import DatasetsApi
from service.events import EventsApi
from service.gemini_facade import generative_servicer, model_servicer, operations_servicer
from service.gemini_facade.methods import generic_handler as facade_handler
from service.generation import GenerationApi, JobReads
from service.generation_servicer import SERVICE as GENERATION_SERVICE
from service.generation_servicer import GenerationServicer
from service.generation_servicer import generic_handler as generation_handler
from service.inference_limits import InferenceLimits
from service.jobs_api import JobsApi
from service.listing import PageTokens
from service.message_limits import MessageLimits
from service.near_cache import NearCache
from service.observability import RpcObserver
from service.refusal_brake import RefusalBrake
from service.retirement import export_retire_times
from service.retune import Retuner
from service.status import CachedStatus, StatusReader, status_size_bytes
from service.tls import server_credentials
from service.tracing import RpcTracer
from service.tuning_servicer import SERVICE, TuningServicer, generic_handler
from service.usage_api import UsageApi
from service.usage_servicer import SERVICE as USAGE_SERVICE
from service.usage_servicer import UsageServicer
from service.usage_servicer import generic_handler as usage_handler
from service.vertex_express.listener import ExpressServer, start_express
from service.watch import Watches, WatchHub
from service.wrapping import Registrar, Wrap, chained

log = logging.getLogger(__name__)


class ApiServer:
    """A running API server: `port` is the bound port, `stop` drains it.

    Health follows Redis (core.runtime.health) and reports NOT_SERVING while draining.
    """

    def __init__(
        self,
        server: grpc.aio.Server,
        port: int,
        health: RedisHealth,
        *,
        resources: contextlib.ExitStack | None = None,
        status_cache: NearCache[CachedStatus] | None = None,
        http: aiohttp.ClientSession | None = None,
        watch_hub: WatchHub | None = None,
        generation: GenerationServicer | None = None,
        express: ExpressServer | None = None,
        audit: AuditTrail | None = None,
    ) -> None:
        self._express = express
        self._audit = audit
        self._watch_hub = watch_hub
        self._generation = generation
        self.server = server
        self._http = http
        self._resources = resources or contextlib.ExitStack()  # closed after the drain
        self.status_cache = status_cache
        self.port = port
        self.health = health

    @property
    def express_port(self) -> int:
        """The Vertex AI express-mode facade's bound port (service.vertex_express); 0 when
        it is not served (`express_listen` empty)."""
        return self._express.port if self._express is not None else 0

    async def stop(self, grace_s: float) -> None:
        """Report NOT_SERVING, refuse new RPCs, give in-flight ones `grace_s` to finish."""
        await self.health.draining()
        if self._watch_hub is not None:  # watchers reconnect elsewhere and resume
            self._watch_hub.drain()
        if self._express is None:
            await self.server.stop(grace_s)
        else:  # its requests drain alongside the RPCs, within the same grace
            await asyncio.gather(self._express.stop(), self.server.stop(grace_s))
        if self._audit is not None:  # the drained calls' records
            await self._audit.aclose()
        if self._generation is not None:
            await self._generation.aclose()
        if self.status_cache is not None:
            await self.status_cache.aclose()
        if self._http is not None:
            await self._http.close()
        self._resources.close()


async def start_api(
    settings: Settings,
    redis: Redis,
    tenants: TenantDirectory,
    *,
    listen: str | None = None,
    clock: Clock = system_clock,
    health_check_s: float = CHECK_INTERVAL_S,
    quotas_for: QuotasFor | None = None,
    token_http: httpx.Client | None = None,
    metrics: Metrics | None = None,
    conditions: Mapping[str, Callable[[], bool]] | None = None,
) -> ApiServer:
    """Build and start the API on `listen` (default: settings.grpc_listen; port 0 = any).

    `tenants` may follow its file (`TenantDirectory.watch`). `token_http` reaches the
    OAuth token endpoint for the CredentialService (default: a client of its own).
    TLS and the encryption keys come from `settings`. `conditions`: by name, more checks
    that must hold for health to be SERVING (`serve` adds Redis's start-up checks).
    """
    resources = contextlib.ExitStack()
    if token_http is None:
        token_http = resources.enter_context(httpx.Client(timeout=settings.token_timeout_s))
    keys = Keys(settings.redis_key_prefix)
    server = grpc.aio.server(options=server_options(settings))
    metrics = metrics or Metrics.create()
    export_retire_times(metrics, settings.catalogue())
    brake = RefusalBrake(settings.tenant_refusals_per_s, settings.tenant_refusal_burst)
    observer = RpcObserver(metrics, ended=brake.ended)
    audit, audit_reader = audit_parts(settings, redis, tenants, clock)
    limits = MessageLimits.from_settings(settings)  # one receive budget for both listeners
    wraps = rpc_wrappers(settings, tenants, observer, brake, audit=audit, limits=limits)
    registrar = Registrar(server, wraps)
    status_cache = status_cache_of(settings, keys)
    hub = WatchHub(per_tenant=settings.tenant_max_watches, per_replica=settings.max_watches)
    if status_cache is not None:
        status_cache.listen(hub.changed)  # its change notices wake WatchTuningJob streams
    quotas = quotas_for or tenants.quotas_for(settings.default_quotas())
    checker = DatasetChecker(
        processes=settings.validation_processes, per_tenant=settings.tenant_max_validations
    )
    resources.callback(checker.close)  # its processes stop with the server
    storage_http = open_session(timeout_s=settings.upstream_timeout_s)
    tuning = tuning_servicer(
        settings,
        redis,
        quotas,
        status_cache,
        clock,
        checker=checker,
        provider_of=providers_of(tenants),
        files=DatasetFiles.from_settings(settings, storage_http, token_http, metrics),
        hub=hub,
    )
    registrar.add_generic_rpc_handlers([generic_handler(tuning)])
    generation = generation_servicer(
        settings, redis, tenants, clock, storage_http, token_http, metrics, quotas, tuning.status
    )
    registrar.add_generic_rpc_handlers([generation_handler(generation)])
    registrar.add_generic_rpc_handlers([alias_handler(alias_servicer(settings, redis, clock))])
    registrar.add_generic_rpc_handlers(gemini_facade_handlers(settings, tuning, generation))
    registrar.add_generic_rpc_handlers([audit_handler(AuditServicer(audit_reader))])
    usage = UsageApi(UsageReader(redis, keys), tenants.tenant_ids, quotas, clock)
    registrar.add_generic_rpc_handlers([usage_handler(UsageServicer(usage))])
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, registrar.stand_in)
    key_ring = watch_keys(settings.encryption_keys_file)
    health_conditions = {**security_file_checks(tenants, key_ring, metrics), **(conditions or {})}
    admin = add_credential_service(
        registrar,
        settings=settings,
        redis=redis,
        tenants=tenants,
        keys=key_ring,
        token_http=token_http,
        clock=clock,
    )
    names = (
        SERVICE.full_name,
        GENERATION_SERVICE.full_name,
        ALIAS_SERVICE.full_name,
        *FACADE_SERVICES,
        admin,
        AUDIT_SERVICE.full_name,
        USAGE_SERVICE.full_name,
        health.SERVICE_NAME,
        reflection.SERVICE_NAME,
    )
    # Reflection picks its asyncio flavor by the server's type, so it gets the server
    # itself, unwrapped; it is open to all (service.auth.OPEN_METHODS).
    reflection.enable_server_reflection(names, server)
    port = _listen(server, listen or settings.grpc_listen, settings)
    await server.start()
    redis_health = RedisHealth(
        health_servicer,
        redis,
        ("", SERVICE.full_name, GENERATION_SERVICE.full_name, ALIAS_SERVICE.full_name),
        health_check_s,
        health_conditions,
        redis_up=metrics.redis_up,
    )
    await redis_health.start()
    express = None
    if settings.express_listen:
        express = await start_express(
            settings,
            tenants,
            tuning.jobs,
            tuning.status,
            generation.api,
            metrics=metrics,
            brake=brake,
            audit=audit,
            limits=limits,
        )
    if status_cache is not None:
        await status_cache.start()
    return ApiServer(
        server,
        port,
        redis_health,
        resources=resources,
        status_cache=status_cache,
        watch_hub=hub,
        generation=generation,
        http=storage_http,
        express=express,
        audit=audit,
    )


FACADE_SERVICES = (
    model_servicer.SERVICE,
    operations_servicer.SERVICE,
    generative_servicer.SERVICE,
)
"""The Gemini API facade's services (service.gemini_facade), on the same server."""


def gemini_facade_handlers(
    settings: Settings, tuning: TuningServicer, generation: GenerationServicer
) -> list[grpc.GenericRpcHandler]:
    """The Gemini API's tuning surface over the TuningService's and GenerationService's
    own behaviour: the same validation, quotas and tenancy."""
    models = model_servicer.ModelFacade(tuning.jobs, tuning.status, settings)
    operations = operations_servicer.OperationsFacade(tuning.jobs, tuning.status)
    return [
        facade_handler(model_servicer.SERVICE, model_servicer.METHODS, models),
        facade_handler(operations_servicer.SERVICE, operations_servicer.METHODS, operations),
        facade_handler(
            generative_servicer.SERVICE,
            generative_servicer.METHODS,
            generative_servicer.GenerativeFacade(
                generation.api, max_reported_violations=settings.max_reported_violations
            ),
        ),
    ]


def security_file_checks(
    tenants: TenantDirectory, key_ring: ReloadingFile[KeyRing] | None, metrics: Metrics
) -> dict[str, Callable[[], bool]]:
    """Health conditions for the tenants and keys files, and their gauges.

    A broken file fails closed (core.security.secret_files); health then reports
    NOT_SERVING, and `tuning_security_file_ok{file}` is 0 so an alert can fire."""
    checks: dict[str, Callable[[], bool]] = {"tenants file": tenants.check_file}
    metrics.security_file_ok.labels(file="tenants").set_function(lambda: tenants.file_ok)
    if key_ring is not None:
        checks["encryption keys file"] = key_ring.check
        metrics.security_file_ok.labels(file="keys").set_function(lambda: key_ring.ok)
    return checks


def rpc_wrappers(
    settings: Settings,
    tenants: TenantDirectory,
    observer: RpcObserver,
    brake: RefusalBrake | None = None,
    *,
    audit: AuditTrail | None = None,
    limits: MessageLimits | None = None,
) -> Wrap:
    """What every registered method is wrapped in, innermost first: its message limit and
    parser (service.message_limits), then authentication, so that no request is parsed
    before its caller is known (and, with a `brake`, none of a much-refused caller's
    before its turn), then the observer, which sees every RPC (and tells the brake how
    each ended), and outermost, when tracing is on, each call's span (service.tracing).
    With an `audit` trail (service.audit), its state-changing methods are noted innermost
    (the parsed request, the answer) and recorded just outside authentication (every
    call, refused or not, under the observer's request id)."""
    mutual_tls = bool(settings.tls_client_ca_file)
    auth = Authenticator(tenants, mutual_tls=mutual_tls, brake=brake)
    limit = (limits or MessageLimits.from_settings(settings)).wrap
    wraps = [limit, auth.wrap, observer.wrap]
    if audit is not None:
        wraps = [audit.noting, limit, auth.wrap, audit.recording, observer.wrap]
    if tracing.tracer() is not None:  # off, no call pays for it
        wraps.append(RpcTracer().wrap)
    return chained(*wraps)


def audit_parts(
    settings: Settings, redis: Redis, tenants: TenantDirectory, clock: Clock
) -> tuple[AuditTrail, AuditReader]:
    """The audit trail's recorder and its reader, over one store (core.redis.audit)."""
    keys = Keys(settings.redis_key_prefix)
    store = AuditStore(
        redis,
        keys,
        clock,
        retention_s=settings.audit_retention_s,
        max_records=settings.audit_max_records,
    )
    trail = AuditTrail(store, tenants, clock, aliases=AliasStore(redis, keys))
    return trail, AuditReader(store, tenants)


def tuning_servicer(
    settings: Settings,
    redis: Redis,
    quotas: QuotasFor,
    status_cache: NearCache[CachedStatus] | None,
    clock: Clock,
    *,
    checker: DatasetChecker,
    provider_of: ProviderOf,
    files: DatasetFiles | None = None,
    hub: WatchHub,
) -> TuningServicer:
    """The TuningService's behaviour over Redis: jobs, datasets and the status read."""
    keys = Keys(settings.redis_key_prefix)
    datasets = DatasetStore(redis, keys, clock)
    schedule = Schedule(redis, keys)
    store = JobStore(redis, keys, clock, max_events=settings.job_max_events)
    admission = Admission(redis, keys, schedule, quotas)
    page_tokens = PageTokens(PageTokenKey(redis, keys))
    jobs = JobsApi(
        store,
        schedule,
        datasets,
        admission,
        quotas,
        settings,
        clock,
        page_tokens=page_tokens,
        checker=checker,
        provider_of=provider_of,
        files=files,
        # The API only reads places in the projects' lines: it never asks for a limit.
        slots=ProjectSlots(redis, keys, limit_of=lambda _project: 0),
        aliases=AliasStore(redis, keys),
    )
    status = StatusReader(jobs, store, keys, status_cache)
    datasets_api = DatasetsApi(datasets, settings, clock, checker, page_tokens, quotas, files)
    poll_s = None if status_cache is not None else settings.watch_poll_s
    watches = Watches(status, keys, hub, heartbeat_s=settings.watch_heartbeat_s, poll_s=poll_s)
    retuner = Retuner(
        jobs,
        store,
        datasets,
        checker=checker,
        small_request_bytes=settings.grpc_small_request_max_bytes,
    )
    events = EventsApi(redis, keys, status)
    return TuningServicer(jobs, datasets_api, status, retuner, watches=watches, events=events)


def generation_servicer(  # noqa: PLR0917 (the process's parts, each one of a kind)
    settings: Settings,
    redis: Redis,
    tenants: TenantDirectory,
    clock: Clock,
    http: aiohttp.ClientSession,
    token_http: httpx.Client,
    metrics: Metrics,
    quotas: QuotasFor,
    jobs: JobReads,
) -> GenerationServicer:
    """The GenerationService: jobs read through the status cache (`jobs`), the upstream
    called on the process's HTTP session with each tenant's credential, resolved as the
    worker resolves it, within each tenant's inference limits (service.inference_limits)."""
    keys = Keys(settings.redis_key_prefix)
    credentials = CredentialSource.from_settings(settings, tenants, redis, token_http, metrics)
    aliases = AliasStore(redis, keys)
    limits = InferenceLimits(
        InferenceQuota(redis, keys, clock),
        quotas,
        slot_lease_s=settings.generate_slot_lease_s,
        metrics=metrics,
    )
    api = GenerationApi(
        jobs,
        aliases,
        credentials.for_tenant,
        http,
        settings=settings,
        limits=limits,
        metrics=metrics,
    )
    return GenerationServicer(api)


def alias_servicer(settings: Settings, redis: Redis, clock: Clock) -> AliasServicer:
    """The AliasService: aliases in Redis, their targets checked against the job store."""
    keys = Keys(settings.redis_key_prefix)
    page_tokens = PageTokens(PageTokenKey(redis, keys))
    api = AliasesApi(
        AliasStore(redis, keys),
        JobStore(redis, keys, clock, max_events=settings.job_max_events),
        page_tokens,
        catalogue=settings.catalogue(),
        clock=clock,
    )
    return AliasServicer(api)


def providers_of(tenants: TenantDirectory) -> ProviderOf:
    """Each tenant's provider, as the tenants file says now (a value a child process can
    take: CreateTuningJob validates for it, and its job keeps it)."""

    def provider_of(tenant_id: str) -> ProviderChoice:
        found = tenants.tenant(tenant_id)
        return ProviderChoice() if found is None else found.provider

    return provider_of


def status_cache_of(settings: Settings, keys: Keys) -> NearCache[CachedStatus] | None:
    """The replica's near cache of job statuses, unless switched off."""
    if settings.status_cache_entries <= 0:
        return None
    endpoints = RedisEndpoints(settings.redis_url, cluster=settings.redis_cluster)
    return NearCache(
        endpoints,
        keys.tenant_scoped_prefix(),
        max_entries=settings.status_cache_entries,
        max_bytes=settings.status_cache_max_bytes,
        size_of=status_size_bytes,
        max_stale_s=settings.status_cache_max_stale_s,
    )


def server_options(settings: Settings) -> list[tuple[str, int]]:
    """Message size limits, keepalive, and a maximum connection age.

    Behind a ClusterIP Service a client's HTTP/2 connection stays on one replica for
    as long as it lives; closing connections gracefully after `grpc_max_connection_age_s`
    makes clients reconnect, and so spreads load onto replicas added since.

    HTTP/2 flow-control windows stay at their initial size (no BDP probing). gRPC grows a
    connection's windows to what it measures the link can carry, and then reads that much
    of a request its handler has not asked for: an unauthenticated 16 MB create, held
    back by the refusal brake before its answer, was received whole, and thirty of them a
    minute took another tenant's p99 read to 1.8x (NOISY_NEIGHBOUR_ONLY=unauthenticated;
    0.93-1.03x without probing). Inside a cluster the initial window already covers the
    round trip: a 4 MB upload went as fast either way (bench.dataset_validation, 1.89x
    and 1.91x of a bare parse).
    """
    max_bytes = settings.grpc_max_message_bytes
    # gRPC's own limit lets in the largest request any method takes; each method's own,
    # smaller limit is checked after authentication (service.message_limits).
    receive_bytes = MessageLimits.from_settings(settings).largest_bytes
    keepalive_ms = int(settings.grpc_keepalive_s * 1000)
    return [
        ("grpc.max_receive_message_length", receive_bytes),
        ("grpc.max_send_message_length", max_bytes),
        ("grpc.keepalive_time_ms", keepalive_ms),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.max_connection_age_ms", int(settings.grpc_max_connection_age_s * 1000)),
        ("grpc.max_connection_age_grace_ms", int(settings.grpc_grace_s * 1000)),
        ("grpc.http2.bdp_probe", 0),
    ]


def _listen(server: grpc.aio.Server, address: str, settings: Settings) -> int:
    """Bind `address`, with TLS (mutual if a client CA is set) or plaintext; the port."""
    credentials = server_credentials(settings)
    if credentials is None:
        return server.add_insecure_port(address)
    return server.add_secure_port(address, credentials)


async def serve(settings: Settings) -> None:
    """Run the API until SIGTERM, then drain and return.

    It listens at once; its health is NOT_SERVING until Redis has passed the start-up
    checks, which it waits for (core.redis.startup).
    """
    with tracing.exporting(settings.otlp_endpoint, "tuning-api"):
        await _serve(settings)


async def _serve(settings: Settings) -> None:
    redis = connect(settings.redis_url, cluster=settings.redis_cluster)
    startup = RedisStartup(redis)
    tenants = TenantDirectory.watch(settings.tenants_file)
    metrics = Metrics.create()
    if settings.metrics_listen:
        metrics.serve(settings.metrics_listen)
    api = await start_api(
        settings, redis, tenants, metrics=metrics, conditions=startup.conditions()
    )
    log.info("API listening on port %d", api.port)
    if api.express_port:
        log.info("Vertex AI express facade listening on port %d", api.express_port)
    print(f"API_READY port={api.port}", flush=True)
    try:
        async with stop_signals() as stop:
            if await startup.wait(stop):
                await api.health.check_now()
                await stop.wait()
            log.info("stopping: draining for up to %.1fs", settings.grpc_grace_s)
    finally:
        await api.stop(settings.grpc_grace_s)
    await redis.aclose()
