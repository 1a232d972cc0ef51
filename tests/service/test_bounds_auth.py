"""Authentication before anything else, each method's own message limit, quotas before work.

Issue 12, items 6, 7 and 14, attacked through a real server: every RPC of every tuning.v1
service refuses a caller without credentials, whatever its kind; an unauthenticated
megabyte request is never parsed; an authenticated one over its method's limit is refused
before it is parsed; creates over the tenant's quota are refused before they are
validated, and validate_only calls have a rate of their own.
"""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2

import tuning.v1
from core.domain.quotas import QuotaOverrides
from core.runtime.metrics import Metrics
from core.runtime.settings import Settings
from core.security.tenants import TenantDirectory
from service.observability import RpcObserver
from service.process import rpc_wrappers, server_options
from service.wrapping import Registrar, handler_kind
from tests.conftest import SystemFactory
from tests.harness import System, job_spec
from tests.rpc_errors import detail, reason, violations
from tuning.v1 import dataset_pb2, tuning_job_pb2, tuning_service_pb2


@pytest.fixture
def api_only(api_without_brake: System) -> System:
    """The tests here make hundreds of refused calls on purpose: without the refusal brake."""
    return api_without_brake


MB = 1024 * 1024
NOT_A_MESSAGE = b"\xff" * 16  # a field tag whose varint never ends: no message parses it


def tuning_v1_methods() -> list[tuple[str, MethodDescriptor]]:
    """Every method of every service in the tuning.v1 package, from the generated code."""
    found = []
    for module_info in pkgutil.iter_modules(tuning.v1.__path__):
        if not module_info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(f"tuning.v1.{module_info.name}")
        for service in module.DESCRIPTOR.services_by_name.values():
            found += [(f"/{service.full_name}/{m.name}", m) for m in service.methods]
    return sorted(found, key=lambda pair: pair[0])


Kind = tuple[bool, bool]
"""(client streaming, server streaming)"""


def kind_of(method: MethodDescriptor) -> Kind:
    return bool(method.client_streaming), bool(method.server_streaming)


async def raw_call(
    channel: grpc.aio.Channel, path: str, kind: Kind, body: bytes, **kwargs: Any
) -> Any:
    """Call `path` with `body` as its request bytes, whatever the method's kind."""
    streaming_in, streaming_out = kind
    kinds = {
        (False, False): channel.unary_unary,
        (True, False): channel.stream_unary,
        (False, True): channel.unary_stream,
        (True, True): channel.stream_stream,
    }
    multicallable: Any = kinds[streaming_in, streaming_out](path)
    call = multicallable(iter([body]) if streaming_in else body, **kwargs)
    if streaming_out:
        return [answer async for answer in call]
    return await call


def raw_channel(system: System) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(
        f"127.0.0.1:{system.api.port}", options=[("grpc.max_send_message_length", -1)]
    )


# Item 14: every RPC is authenticated unless it is on the allow-list.


async def test_every_tuning_v1_method_refuses_a_caller_without_credentials(
    api_only: System,
) -> None:
    methods = tuning_v1_methods()
    assert len(methods) >= 10  # the enumeration found the services (at least 7 + 3)
    async with raw_channel(api_only) as channel:
        for path, method in methods:
            for body in (b"", NOT_A_MESSAGE):
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await asyncio.wait_for(raw_call(channel, path, kind_of(method), body), 5)
                assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, path
                assert reason(refused.value) == "TOKEN_INVALID", path
    assert await api_only.state_keys() == []


async def test_health_and_reflection_stay_open(api_only: System) -> None:
    async with raw_channel(api_only) as channel:
        check: Any = channel.unary_unary("/grpc.health.v1.Health/Check")
        answer = health_pb2.HealthCheckResponse.FromString(
            await check(health_pb2.HealthCheckRequest().SerializeToString())
        )
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        watch: Any = channel.unary_stream("/grpc.health.v1.Health/Watch")
        async for first in watch(health_pb2.HealthCheckRequest().SerializeToString()):
            assert health_pb2.HealthCheckResponse.FromString(first).status == answer.status
            break
        reflect: Any = channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
        )
        listed = [r async for r in reflect(iter([b"\x3a\x00"]))]  # list_services = ""
        assert b"tuning.v1.TuningService" in listed[0]


@asynccontextmanager
async def seamed_server(
    system: System, handlers: dict[str, grpc.RpcMethodHandler[Any, Any]], service: str
) -> AsyncIterator[grpc.aio.Channel]:
    """A real server wrapped as the API's (service.process.rpc_wrappers), serving
    `handlers` under `service`: methods of any kind, with parsers that count their calls."""
    server = grpc.aio.server(options=server_options(system.settings))
    tenants = TenantDirectory.watch(system.tenants_file)
    wrap = rpc_wrappers(system.settings, tenants, RpcObserver(Metrics.create()))
    Registrar(server, wrap).add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler(service, handlers)]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", -1)]
        ) as channel:
            yield channel
    finally:
        await server.stop(None)


def counting(parsed: list[int]) -> Callable[[bytes], bytes]:
    def parse(raw: bytes) -> bytes:
        parsed.append(len(raw))
        return raw

    return parse


async def test_a_method_added_later_of_any_kind_is_authenticated(api_only: System) -> None:
    parsed: list[int] = []

    async def unary(request: bytes, context: Any) -> bytes:
        return b"ok"

    async def server_streaming(request: bytes, context: Any) -> AsyncIterator[bytes]:
        yield b"ok"

    async def both_streaming(requests: Any, context: Any) -> AsyncIterator[bytes]:
        async for _ in requests:
            yield b"ok"

    behaviors: dict[tuple[bool, bool], Any] = {
        (False, False): unary,
        (False, True): server_streaming,
        (True, True): both_streaming,
    }
    kinds = {f"Later{n}": kind for n, kind in enumerate(behaviors)}
    handlers = {
        name: handler_kind(*kind)(behaviors[kind], request_deserializer=counting(parsed))
        for name, kind in kinds.items()
    }
    async with seamed_server(api_only, handlers, "tuning.v1.TuningService") as channel:
        for name, kind in kinds.items():
            path = f"/tuning.v1.TuningService/{name}"
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await raw_call(channel, path, kind, b"x")
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, name
            answer = await raw_call(channel, path, kind, b"x", metadata=api_only.auth())
            assert answer in (b"ok", [b"ok"]), name
    assert parsed == [1, 1, 1]  # only the authenticated calls were parsed


# Item 6: authentication from metadata before the body is parsed; per-method limits.


async def test_an_unauthenticated_8_mb_create_is_refused_and_never_parsed(
    api_only: System,
) -> None:
    create, method = "/tuning.v1.TuningService/CreateTuningJob", (False, False)
    garbage = NOT_A_MESSAGE * (8 * MB // len(NOT_A_MESSAGE))
    async with raw_channel(api_only) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await raw_call(channel, create, method, garbage)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # The same bytes from a known caller are parsed, and are not a message at all.
        with pytest.raises(grpc.aio.AioRpcError) as malformed:
            await raw_call(channel, create, method, garbage, metadata=api_only.auth())
        assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert violations(malformed.value) == {
            "request": "not a valid protobuf message for this method"
        }
    # And through the API's own wrapping with a parser that counts: never called.
    parsed: list[int] = []

    async def behavior(request: bytes, context: Any) -> bytes:
        return b""

    handler: Any = grpc.unary_unary_rpc_method_handler(
        behavior, request_deserializer=counting(parsed)
    )
    seam = {"CreateTuningJob": handler}
    async with seamed_server(api_only, seam, "tuning.v1.TuningService") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await raw_call(channel, create, method, garbage)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert parsed == []
        await raw_call(channel, create, method, garbage, metadata=api_only.auth())
        assert parsed == [len(garbage)]


async def test_a_unary_call_is_refused_before_its_request_is_read(api_only: System) -> None:
    """The server answers a caller who is no one while its request is still on the wire:
    the call sends its metadata and then waits, and is refused all the same (a server
    that read the request first would wait for it until the deadline)."""
    never = asyncio.Event()

    async def no_request() -> AsyncIterator[bytes]:
        await never.wait()
        yield b""  # pragma: no cover - never reached

    unary = [(p, m) for p, m in tuning_v1_methods() if not m.client_streaming]
    assert len(unary) >= 8
    async with raw_channel(api_only) as channel:
        for path, _ in unary:
            # The wire does not say a method's kind: a client may stream to a unary one.
            call: Any = channel.stream_stream(path)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                async for _ in call(no_request(), timeout=5):
                    pass
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, path
    # A known caller's call is read as soon as it sends its message.
    job = await api_only.create()
    async with raw_channel(api_only) as channel:
        get: Any = channel.stream_unary("/tuning.v1.TuningService/GetTuningJob")
        request = tuning_service_pb2.GetTuningJobRequest(name=job.name)
        answer = await get(iter([request.SerializeToString()]), metadata=api_only.auth(), timeout=5)
        assert tuning_job_pb2.TuningJob.FromString(answer).name == job.name
        with pytest.raises(grpc.aio.AioRpcError) as empty:
            await get(iter([]), metadata=api_only.auth(), timeout=5)
        assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        create: Any = channel.stream_unary("/tuning.v1.TuningService/CreateTuningJob")
        large = tuning_service_pb2.CreateTuningJobRequest(
            tuning_job=job_spec(description="d" * (100 * 1024))
        ).SerializeToString()
        with pytest.raises(grpc.aio.AioRpcError) as two:
            await create(iter([large, large]), metadata=api_only.auth(), timeout=5)
        assert two.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "second request message" in (two.value.details() or "")


def resident_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


async def test_refused_megabyte_requests_do_not_grow_the_server(api_only: System) -> None:
    """A unary call served as request-streaming keeps its buffers unless its end of stream
    is read (service.wrapping `_end_of`): 400 refused 1 MB reads grew the API by 100 MB."""
    big = tuning_service_pb2.GetTuningJobRequest(name="tuningJobs/" + "j" * MB)
    for _ in range(50):  # warm up the allocator's arenas
        with pytest.raises(grpc.aio.AioRpcError):
            await api_only.stub.GetTuningJob(big, metadata=api_only.auth())
    before = resident_bytes()
    for _ in range(400):
        with pytest.raises(grpc.aio.AioRpcError):
            await api_only.stub.GetTuningJob(big, metadata=api_only.auth())
    assert resident_bytes() - before < 40 * MB


async def test_an_authenticated_1_mb_get_is_refused_by_its_own_limit(api_only: System) -> None:
    big = tuning_service_pb2.GetTuningJobRequest(name="tuningJobs/" + "j" * MB)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await api_only.stub.GetTuningJob(big, metadata=api_only.auth())
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason(refused.value) == "REQUEST_TOO_LARGE"
    assert "TUNING_GRPC_SMALL_REQUEST_MAX_BYTES" in violations(refused.value)["request"]
    assert len(refused.value.details() or "") < 1024  # the answer does not echo the megabyte
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await api_only.stub.GetTuningJob(big)  # no credentials: that comes first
    assert unknown.value.code() == grpc.StatusCode.UNAUTHENTICATED
    page = tuning_service_pb2.ListTuningJobsRequest(page_token="p" * (100 * 1024))
    with pytest.raises(grpc.aio.AioRpcError) as listed:
        await api_only.stub.ListTuningJobs(page, metadata=api_only.auth())
    assert reason(listed.value) == "REQUEST_TOO_LARGE"
    # Just under the limit is the method's own business again.
    job = await api_only.create()
    assert (await api_only.get(job.name)).name == job.name


async def test_a_create_may_be_as_large_as_the_server_takes(api_only: System) -> None:
    text = "x" * 30_000
    examples = [tuning_job_pb2.TrainingExample(text_input=text, output="y") for _ in range(40)]
    job = await api_only.create(training_examples=examples)  # 1.2 MB: over the small limit
    assert job.name.startswith("tuningJobs/")


async def test_an_upload_message_over_its_limit_is_refused(api_only: System) -> None:
    header = tuning_service_pb2.UploadDatasetRequest(
        dataset=dataset_pb2.Dataset(format=dataset_pb2.Dataset.JSONL)
    )
    limit = api_only.settings.upload_max_chunk_bytes
    chunk = tuning_service_pb2.UploadDatasetRequest(
        chunk=b"x" * (limit + api_only.settings.grpc_small_request_max_bytes + 1)
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await api_only.stub.UploadDataset(iter([header, chunk]), metadata=api_only.auth())
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason(refused.value) == "REQUEST_TOO_LARGE"
    assert "TUNING_UPLOAD_MAX_CHUNK_BYTES" in violations(refused.value)["request"]


async def test_malformed_bytes_to_the_credential_service_are_invalid_not_internal(
    api_only: System,
) -> None:
    path = "/tuning.v1.CredentialService/GetTenantCredential"
    async with raw_channel(api_only) as channel:
        call: Any = channel.unary_unary(path)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call(NOT_A_MESSAGE, metadata=api_only.auth("ops"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# Item 7: quotas before the heavy work; validate_only has a rate of its own.


def large_invalid_create(n: int) -> tuning_service_pb2.CreateTuningJobRequest:
    """About 1 MB, all of it to be validated and converted, and invalid (no outputs)."""
    examples = [tuning_job_pb2.TrainingExample(text_input="q" * 1000) for _ in range(1000)]
    return tuning_service_pb2.CreateTuningJobRequest(
        request_id=f"big-{n}", tuning_job=job_spec(training_examples=examples)
    )


async def test_creates_over_the_quota_are_refused_before_they_are_validated(
    make_system: SystemFactory,
) -> None:
    async with make_system(
        with_worker=False, tenant_creates_per_minute=0.5, tenant_create_burst=2
    ) as system:
        first = await system.create(request_id="r-1")
        await system.create(request_id="r-2")
        keys_before = sorted(await system.state_keys())
        memory_before = (await system.redis.info("memory"))["used_memory"]
        refusals = []
        for n in range(8):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await system.stub.CreateTuningJob(large_invalid_create(n), metadata=system.auth())
            refusals.append(refused.value)
        for error in refusals:  # not INVALID_ARGUMENT: never validated
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert reason(error) == "CREATE_RATE_EXCEEDED"
            quota = detail(error, error_details_pb2.QuotaFailure)
            assert quota.violations[0].subject == "tenant:team-a"
            assert detail(error, error_details_pb2.RetryInfo).retry_delay.seconds > 0
        assert sorted(await system.state_keys()) == keys_before
        grown = (await system.redis.info("memory"))["used_memory"] - memory_before
        assert grown < 1 * MB  # 8 MB of requests refused: nothing of them kept
        # A retry of a request that made its job still answers it, quota or not.
        again = await system.create(request_id="r-1")
        assert again.name == first.name
        # Another tenant's quota is its own.
        await system.create(tenant="team-b", request_id="r-1")


async def test_validate_only_has_a_rate_of_its_own_and_spends_no_create(
    make_system: SystemFactory,
) -> None:
    async with make_system(
        with_worker=False,
        tenant_creates_per_minute=0.5,
        tenant_create_burst=1,
        tenant_validates_per_minute=0.5,
        tenant_validate_burst=3,
    ) as system:
        dry = tuning_service_pb2.CreateTuningJobRequest(tuning_job=job_spec(), validate_only=True)
        for _ in range(3):
            await system.stub.CreateTuningJob(dry, metadata=system.auth())
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await system.stub.CreateTuningJob(dry, metadata=system.auth())
        error = refused.value
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert reason(error) == "VALIDATE_RATE_EXCEEDED"
        assert detail(error, error_details_pb2.QuotaFailure).violations[0].subject == (
            "tenant:team-a"
        )
        assert detail(error, error_details_pb2.RetryInfo).retry_delay.seconds > 0
        # Refused before it is validated: an invalid dry run gets the same answer.
        invalid = tuning_service_pb2.CreateTuningJobRequest(
            tuning_job=tuning_job_pb2.TuningJob(), validate_only=True
        )
        with pytest.raises(grpc.aio.AioRpcError) as also:
            await system.stub.CreateTuningJob(invalid, metadata=system.auth())
        assert reason(also.value) == "VALIDATE_RATE_EXCEEDED"
        # The one create of the burst is still there: dry runs spent none of it.
        await system.create(request_id="real")
        await system.stub.CreateTuningJob(dry, metadata=system.auth("team-b"))


def test_the_tenants_file_may_set_the_validate_rate() -> None:
    overrides = QuotaOverrides.from_json({"validates_per_minute": 5, "validate_burst": 2})
    quotas = overrides.over(Settings().default_quotas())
    assert (quotas.validates_per_minute, quotas.validate_burst) == (5, 2)
    assert quotas.creates_per_minute == Settings().tenant_creates_per_minute
