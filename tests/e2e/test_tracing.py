"""One job's trace: the caller's create, the worker's visits, their Redis scripts and
upstream requests, all in the caller's trace (W3C traceparent in, OpenTelemetry spans
out, read with an in-memory exporter)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Iterator

import grpc
import pytest
from google.genai import errors as genai_errors
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id

from tests.conftest import SystemFactory
from tests.harness import VERTEX_TENANT, State, job_spec
from tests.service import test_vertex_express as express
from tuning.v1 import tuning_job_pb2, tuning_service_pb2

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
CALLER = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
CREATE = "tuning.v1.TuningService/CreateTuningJob"
VERTEX_FIELDS = {
    "base_model": "gemini-2.5-flash",
    "hyperparameters": tuning_job_pb2.Hyperparameters(epoch_count=2, adapter_size=4),
}


@pytest.fixture
def exported() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    yield provider, spans
    provider.shutdown()


def _trace_of(span: ReadableSpan) -> str:
    assert span.context is not None
    return format_trace_id(span.context.trace_id)


def _id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


def _named(spans: list[ReadableSpan], prefix: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith(prefix)]


def _callers(spans: tuple[ReadableSpan, ...]) -> list[ReadableSpan]:
    return [s for s in spans if _trace_of(s) == CALLER_TRACE]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("tenant", ["team-a", VERTEX_TENANT])
async def test_a_jobs_create_visits_and_upstream_calls_form_the_callers_trace(
    make_system: SystemFactory,
    exported: tuple[TracerProvider, InMemorySpanExporter],
    tenant: str,
) -> None:
    provider, spans = exported
    async with make_system(tracer_provider=provider) as system:
        spec = job_spec(**(VERTEX_FIELDS if tenant == VERTEX_TENANT else {}))
        request = tuning_service_pb2.CreateTuningJobRequest(tuning_job=spec)
        metadata = (*system.auth(tenant), ("traceparent", CALLER))
        created = await system.stub.CreateTuningJob(request, metadata=metadata)
        await system.wait_for(created.name, {State.RUNNING}, tenant=tenant)

        async def polled_twice() -> bool:
            return len(_named(_callers(spans.get_finished_spans()), "visit poll")) >= 2

        await system.eventually(polled_twice)
        done = await system.finish_training(created.name, tenant=tenant)
        assert done.state == State.SUCCEEDED
    traced = _callers(spans.get_finished_spans())

    (create,) = _named(traced, CREATE)
    assert create.kind == SpanKind.SERVER
    assert create.parent is not None and format_span_id(create.parent.span_id) == CALLER_SPAN
    assert create.attributes is not None and create.attributes["rpc.grpc.status_code"] == 0
    assert [s.parent.span_id for s in _named(traced, "EVALSHA create") if s.parent] == [_id(create)]

    visits = _named(traced, "visit ")
    assert {s.name for s in visits} >= {"visit submit", "visit poll"}
    assert all(s.parent is not None and s.parent.span_id == _id(create) for s in visits)
    in_visits = {_id(s) for s in visits} | {_id(s) for s in _named(traced, "step ")}
    assert {"step submit", "step poll"} <= {s.name for s in _named(traced, "step ")}

    scripts = [
        s for s in _named(traced, "EVALSHA ") if s.parent and s.parent.span_id != _id(create)
    ]
    assert {"EVALSHA save"} <= {s.name for s in scripts}
    assert all(s.parent is not None and s.parent.span_id in in_visits for s in scripts)

    upstream = [
        s
        for s in traced
        if s.kind == SpanKind.CLIENT and "http.request.method" in (s.attributes or {})
    ]
    assert upstream, "the visits' upstream requests are spans of the trace"
    assert any(s.attributes and s.attributes["http.request.method"] == "POST" for s in upstream)
    assert all(
        s.attributes and 200 <= int(str(s.attributes["http.response.status_code"])) < 300
        for s in upstream
    )
    assert all(s.parent is not None and s.parent.span_id in in_visits for s in upstream)


@pytest.mark.timeout(30)
async def test_a_call_without_traceparent_starts_its_own_trace_and_reads_are_apart(
    make_system: SystemFactory, exported: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, spans = exported
    async with make_system(tracer_provider=provider, with_worker=False) as system:
        created = await system.create()
        await system.get(created.name)
    (create,) = _named(list(spans.get_finished_spans()), CREATE)
    (get,) = _named(list(spans.get_finished_spans()), "tuning.v1.TuningService/GetTuningJob")
    assert create.parent is None  # a root: the caller sent no traceparent
    assert _trace_of(get) != _trace_of(create)


@pytest.mark.timeout(30)
async def test_a_refused_call_is_a_failed_span(
    make_system: SystemFactory, exported: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, spans = exported
    async with make_system(tracer_provider=provider, with_worker=False) as system:
        request = tuning_service_pb2.GetTuningJobRequest(name="tuningJobs/nope")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await system.stub.GetTuningJob(request, metadata=system.auth())
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    (get,) = _named(list(spans.get_finished_spans()), "tuning.v1.TuningService/GetTuningJob")
    assert not get.status.is_ok
    assert get.attributes is not None and get.attributes["rpc.grpc.status_code"] == 3


@pytest.mark.timeout(30)
async def test_a_stream_of_answers_is_one_span_in_the_callers_trace(
    make_system: SystemFactory, exported: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, spans = exported
    async with make_system(tracer_provider=provider) as system:
        created = await system.create()
        request = tuning_service_pb2.WatchTuningJobRequest(name=created.name)
        metadata = (*system.auth(), ("traceparent", CALLER))
        call = system.stub.WatchTuningJob(request, metadata=metadata)
        following = asyncio.create_task(_answers(call))
        await system.finish_training(created.name)  # the watch ends with the job
        answers = await following
    assert answers
    (watch,) = _named(list(spans.get_finished_spans()), "tuning.v1.TuningService/WatchTuningJob")
    assert _trace_of(watch) == CALLER_TRACE
    assert watch.attributes is not None and watch.attributes["rpc.grpc.status_code"] == 0


async def _answers(call: AsyncIterable[tuning_service_pb2.WatchTuningJobResponse]) -> list[object]:
    return [answer async for answer in call]


@pytest.mark.timeout(30)
async def test_a_cancel_and_a_delete_are_visits_of_the_creates_trace(
    make_system: SystemFactory, exported: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, spans = exported
    async with make_system(tracer_provider=provider) as system:
        request = tuning_service_pb2.CreateTuningJobRequest(tuning_job=job_spec())
        metadata = (*system.auth(), ("traceparent", CALLER))
        created = await system.stub.CreateTuningJob(request, metadata=metadata)
        await system.wait_for(created.name, {State.RUNNING})
        await system.cancel(created.name)
        await system.wait_for(created.name, {State.CANCELLED})
        await system.delete(created.name)

        async def cleaned_up() -> bool:
            return bool(_named(_callers(spans.get_finished_spans()), "visit delete"))

        await system.eventually(cleaned_up)
    (create,) = _named(_callers(spans.get_finished_spans()), CREATE)
    visits = _named(_callers(spans.get_finished_spans()), "visit ")
    assert {"visit submit", "visit cancel", "visit delete"} <= {s.name for s in visits}
    assert all(s.parent is not None and s.parent.span_id == _id(create) for s in visits)


@pytest.mark.timeout(30)
@pytest.mark.filterwarnings("ignore::google.genai._common.ExperimentalWarning")
async def test_the_express_facades_requests_are_spans_and_its_creates_are_traced_on(
    make_system: SystemFactory, exported: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, spans = exported
    async with make_system(tracer_provider=provider, express_listen="127.0.0.1:0") as system:
        dataset = await system.upload(express.jsonl())
        client = express.client_of(system, headers={"traceparent": CALLER})
        job = await express.tune(client, dataset.name)
        await system.wait_for(express.platform_name(job), {State.RUNNING})
        stranger = express.client_of(system, token="nobody")
        with pytest.raises(genai_errors.ClientError):
            await express.call(stranger.tunings.list)
    traced = _callers(spans.get_finished_spans())

    (create,) = _named(traced, "POST tuningJobs.create")
    assert create.kind == SpanKind.SERVER
    assert create.parent is not None and format_span_id(create.parent.span_id) == CALLER_SPAN
    assert create.attributes is not None
    assert (
        create.attributes["http.response.status_code"],
        create.attributes["rpc.grpc.status_code"],
    ) == (200, 0)
    assert [s.parent.span_id for s in _named(traced, "EVALSHA create") if s.parent] == [_id(create)]
    assert all(s.parent and s.parent.span_id == _id(create) for s in _named(traced, "visit "))
    assert _named(traced, "visit submit")

    (refused,) = [s for s in spans.get_finished_spans() if s.name == "GET"]  # never routed
    assert not refused.status.is_ok
    assert refused.attributes is not None and refused.attributes["http.response.status_code"] == 401
