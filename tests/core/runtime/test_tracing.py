"""Tracing's own parts: W3C traceparent in and out, trace ids in log lines, off by
default at no cost, and OTLP export to a real collector endpoint, flushed at exit."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from concurrent import futures

import grpc
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import format_span_id, format_trace_id, get_current_span

from core.runtime import logs, tracing
from core.runtime.settings import Settings
from core.upstream_http import UNFENCED, UpstreamHttp, open_session

CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
CALLER = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    with tracing.installed(provider):
        yield spans
    provider.shutdown()


def test_a_callers_traceparent_in_metadata_is_the_parent() -> None:
    parent = tracing.parent_from([("authorization", "Bearer x"), ("traceparent", CALLER)])
    assert parent is not None
    found = get_current_span(parent).get_span_context()
    assert format_trace_id(found.trace_id) == CALLER_TRACE
    assert found.is_remote


@pytest.mark.parametrize(
    "value",
    [
        "",
        "not-a-traceparent",
        f"00-{'0' * 32}-{CALLER_SPAN}-01",  # the all-zero trace id is invalid
        f"00-{CALLER_TRACE}-{'0' * 16}-01",
        CALLER + "-" + "x" * 200,  # over the bound: not read at all
    ],
)
def test_no_usable_traceparent_starts_a_new_trace(value: str) -> None:
    assert tracing.parent_from([("traceparent", value)]) is None


def test_no_metadata_starts_a_new_trace() -> None:
    assert tracing.parent_from(None) is None
    assert tracing.parent_from([("x-request-id", "r1")]) is None


def test_a_span_continues_the_callers_trace_and_hands_it_on(
    exporter: InMemorySpanExporter,
) -> None:
    span = tracing.start_span("call", parent=tracing.parent_of({"traceparent": CALLER}))
    with tracing.current(span):
        handed_on = tracing.current_traceparent()
    (ended,) = exporter.get_finished_spans()
    assert ended.context is not None and ended.parent is not None
    assert format_trace_id(ended.context.trace_id) == CALLER_TRACE
    assert format(ended.parent.span_id, "016x") == CALLER_SPAN
    assert handed_on == f"00-{CALLER_TRACE}-{format(ended.context.span_id, '016x')}-01"


def test_an_error_marks_the_span_by_its_type_only(exporter: InMemorySpanExporter) -> None:
    with pytest.raises(ValueError, match="secret"), tracing.current(tracing.start_span("x")):
        raise ValueError("a secret in the message")
    (ended,) = exporter.get_finished_spans()
    assert not ended.status.is_ok
    assert ended.status.description == "ValueError"
    assert "secret" not in json.dumps(ended.to_json())


def test_off_by_default_and_nothing_is_built() -> None:
    assert Settings().otlp_endpoint == ""
    assert tracing.provider_for("", "tuning-api") is None
    with tracing.exporting("", "tuning-api"):
        assert tracing.tracer() is None
        assert tracing.start_span("x") is None
        assert tracing.current_traceparent() == ""
        with tracing.current(None):  # the seams' path when off: nothing to enter
            assert not get_current_span().get_span_context().is_valid


def test_redis_and_upstream_spans_need_a_parent(exporter: InMemorySpanExporter) -> None:
    assert tracing.child_tracer() is None  # a worker's claim loop: no one-span traces
    with tracing.current(tracing.start_span("visit")):
        assert tracing.child_tracer() is not None


def _log_lines(emit: logging.Logger) -> list[dict[str, str]]:
    return [json.loads(line) for line in emit.handlers[0].stream.getvalue().splitlines()]  # type: ignore[attr-defined]


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(logs.ContextFilter())
    emit = logging.getLogger("tests.tracing")
    emit.handlers[:] = [handler]
    emit.propagate = False
    yield emit
    emit.handlers.clear()


def test_log_lines_carry_the_trace_and_span_ids(
    exporter: InMemorySpanExporter, logger: logging.Logger
) -> None:
    span = tracing.start_span("call", parent=tracing.parent_of({"traceparent": CALLER}))
    with tracing.current(span):
        logger.warning("inside")
    logger.warning("outside")
    inside, outside = _log_lines(logger)
    (ended,) = exporter.get_finished_spans()
    assert ended.context is not None
    assert inside["trace_id"] == CALLER_TRACE
    assert inside["span_id"] == format(ended.context.span_id, "016x")
    assert "trace_id" not in outside and "span_id" not in outside


class _Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace collector that keeps what it is sent."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: object
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                self.names += [span.name for span in scope.spans]
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
def collector() -> Iterator[tuple[str, _Collector]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    kept = _Collector()
    # opentelemetry-proto's generated gRPC module has no annotations.
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(kept, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"http://127.0.0.1:{port}", kept
    server.stop(0)


@pytest.mark.timeout(20)
async def test_an_endpoint_exports_over_otlp_and_flushes_at_exit(
    collector: tuple[str, _Collector],
) -> None:
    endpoint, kept = collector
    with tracing.exporting(endpoint, "tuning-api"):
        assert tracing.tracer() is not None
        with tracing.current(tracing.start_span("exported")):
            await asyncio.sleep(0)
        assert kept.names == []  # batched: nothing sent yet
    assert kept.names == ["exported"]  # the exit flushed it
    assert tracing.tracer() is None


class _StaticToken:
    async def headers(self) -> dict[str, str]:
        return {"authorization": "Bearer t"}

    async def refresh(self) -> None:
        return None


async def _echo_traceparent(request: web.Request) -> web.Response:
    """An upstream that answers with the traceparent it was sent, and an upload id."""
    seen = request.headers.get("traceparent", "")
    return web.json_response({"seen": seen}, headers={"X-GUploader-UploadID": "up-1"})


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/v1/things/{id}", _echo_traceparent)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.mark.timeout(20)
async def test_an_upstream_request_is_a_span_whose_traceparent_goes_upstream(
    exporter: InMemorySpanExporter, upstream: str
) -> None:
    async with open_session(timeout_s=5.0) as session:
        http = UpstreamHttp(session, upstream, lambda _: "/v1/things/*", fence=UNFENCED)
        answered = await http.call(_StaticToken(), "GET", "/v1/things/1")  # outside a span
        assert answered == {"seen": ""}
        with tracing.current(tracing.start_span("visit")):
            answered = await http.call(_StaticToken(), "GET", "/v1/things/2")
    request, visit = exporter.get_finished_spans()
    assert request.name == "GET /v1/things/*" and request.parent is not None
    assert request.context is not None and visit.context is not None
    assert request.parent.span_id == visit.context.span_id
    ids = [format_trace_id(request.context.trace_id), format_span_id(request.context.span_id)]
    assert answered["seen"].split("-")[1:3] == ids  # the request's own span is the parent
    assert request.attributes is not None
    assert request.attributes["http.response.status_code"] == 200
    assert request.attributes["http.response.header.x-guploader-uploadid"] == ("up-1",)
