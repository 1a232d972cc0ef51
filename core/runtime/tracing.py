"""Tracing with OpenTelemetry: the process's tracer, W3C trace context in and out.

Off unless `TUNING_OTLP_ENDPOINT` names a collector: then no SDK provider is built,
`tracer()` is None, and every seam below skips its span with one check of it (a poll's
visit and a GetTuningJob pay nothing). On, `main` builds one SDK provider that exports
over OTLP (`exporting`), installs it for the process, and shuts it down, flushed, on exit.

The tracer is the process's, as a logger is (`installed`), not an argument: its spans sit
in the few seams every call already crosses (service.tracing's RPC wrapper, a Redis
script run in core.redis.scripts, an upstream exchange in core.upstream_http, a worker's
visit in worker.worker), below every store and client, and the span each one is a child
of travels in OpenTelemetry's context (a contextvar), not in arguments either. Tests
install a provider of their own with an in-memory exporter.

Roots are the RPCs (the caller's `traceparent` their parent when it sent one) and the
worker's visits (each a child of the create that made its job: its traceparent is kept in
the job record, `Job.traceparent`; docs/architecture.md, decision 33). A Redis script or
an upstream request is a span only inside one of those: a worker's claims every few
milliseconds would otherwise each be a one-span trace of their own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

TRACEPARENT = "traceparent"
"""The W3C Trace Context header (and gRPC metadata key) of the caller's span."""
TRACESTATE = "tracestate"
TRACEPARENT_MAX_CHARS = 55
"""A version-00 traceparent's exact length; a longer value is not read (bounds first)."""
TRACER_NAME = "tuning-platform"

_PROPAGATOR = TraceContextTextMapPropagator()
_tracer: Tracer | None = None
"""The installed tracer; None: tracing is off."""


def tracer() -> Tracer | None:
    """The process's tracer, or None when tracing is off."""
    return _tracer


def child_tracer() -> Tracer | None:
    """The tracer, if tracing is on and a span is current to be the parent (Redis
    scripts and upstream requests are spans only inside an RPC's or a visit's)."""
    if _tracer is None or not trace.get_current_span().get_span_context().is_valid:
        return None
    return _tracer


@contextlib.contextmanager
def installed(provider: trace.TracerProvider | None) -> Iterator[None]:
    """Trace with `provider` inside the block (None: tracing off), as before after it.

    Not OpenTelemetry's global provider, which can be set once per process: a test
    installs one of its own per system."""
    global _tracer  # noqa: PLW0603 (the process's one tracer, as logging's root logger)
    before = _tracer
    _tracer = None if provider is None else provider.get_tracer(TRACER_NAME)
    try:
        yield
    finally:
        _tracer = before


def provider_for(endpoint: str, service_name: str) -> TracerProvider | None:
    """An SDK provider that exports to the OTLP/gRPC collector at `endpoint` in batches
    (`http://` for plaintext), or None for an empty endpoint: tracing off, nothing built.

    The sampler is the SDK's default (the parent's decision, else every trace), which
    OpenTelemetry's own `OTEL_TRACES_SAMPLER` variables change."""
    if not endpoint:
        return None
    # Imported only here: a process that does not trace loads none of the SDK.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = SdkProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


@contextlib.contextmanager
def exporting(endpoint: str, service_name: str) -> Iterator[None]:
    """A process's tracing for its run (`main`): on with an endpoint, installed inside the
    block, and its last spans flushed to the collector when it ends."""
    provider = provider_for(endpoint, service_name)
    try:
        with installed(provider):
            yield
    finally:
        if provider is not None:
            provider.shutdown()  # flushes the spans not yet exported


# W3C trace context.


def parent_from(metadata: Iterable[tuple[str, Any]] | None) -> otel_context.Context | None:
    """The caller's span context from gRPC metadata's `traceparent` (and `tracestate`), or
    None when it sent no usable one (a new trace starts)."""
    carrier: dict[str, str] = {}
    for key, value in metadata or ():
        if key in (TRACEPARENT, TRACESTATE) and isinstance(value, str):
            carrier[key] = value
    return parent_of(carrier)


def parent_of(carrier: Mapping[str, str]) -> otel_context.Context | None:
    """The span context a `traceparent` header (in `carrier`) names, or None if it names
    none or a malformed one."""
    traceparent = carrier.get(TRACEPARENT, "")
    if not traceparent or len(traceparent) > TRACEPARENT_MAX_CHARS:
        return None
    found = _PROPAGATOR.extract(carrier)
    return found if trace.get_current_span(found).get_span_context().is_valid else None


def traceparent_of_span(span: Span | None = None) -> str:
    """The W3C traceparent of `span` (default: the current one); "" if it has no valid
    context (tracing off, or no span)."""
    chosen = span or trace.get_current_span()
    if not chosen.get_span_context().is_valid:
        return ""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, trace.set_span_in_context(chosen))
    return carrier.get(TRACEPARENT, "")


def current_traceparent() -> str:
    """The current span's traceparent, for a record that a later span should join; ""
    when tracing is off (nothing is kept, nothing costs)."""
    return "" if _tracer is None else traceparent_of_span()


def ids_of_current() -> tuple[str, str] | None:
    """The current span's (trace id, span id) in hex, as log lines carry them; None
    without a valid one."""
    found = trace.get_current_span().get_span_context()
    if not found.is_valid:
        return None
    return format(found.trace_id, "032x"), format(found.span_id, "016x")


# Spans of the seams.


def start_span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    parent: otel_context.Context | None = None,
    attributes: Mapping[str, Any] | None = None,
    start_time_ns: int | None = None,
) -> Span | None:
    """A started span (None when tracing is off), a child of `parent` (default: the
    current span). The caller ends it, and makes it current where it should be."""
    if _tracer is None:
        return None
    return _tracer.start_span(
        name,
        context=parent,
        kind=kind,
        attributes=dict(attributes or {}),
        start_time=start_time_ns,
    )


_NO_SPAN = contextlib.nullcontext()


def current(span: Span | None) -> contextlib.AbstractContextManager[Any]:
    """`span` current inside the block and ended after it (for None, a shared do-nothing
    block: the seams' path when tracing is off); an error escaping the block marks it
    failed, by the error's type only: a message may echo a caller's input or an
    upstream's words, which the logs redact and spans do not."""
    return _NO_SPAN if span is None else _current(span)


@contextlib.contextmanager
def _current(span: Span) -> Iterator[None]:
    try:
        with trace.use_span(span, record_exception=False, set_status_on_exception=False):
            yield
    except Exception as exc:
        failed(span, type(exc).__name__)
        raise
    finally:
        span.end()


def failed(span: Span, why: str) -> None:
    """Mark `span` failed, `why` its short, safe description."""
    span.set_attribute("error.type", why)
    span.set_status(Status(StatusCode.ERROR, why))
