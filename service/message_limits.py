"""Each method's request limit, checked on the raw bytes before they are parsed.

gRPC's own receive limit is one number for the whole server, and it must fit the largest
request (a CreateTuningJob with inline examples); a GetTuningJob has no use for 16 MB. So
the server hands every method its requests as the bytes that arrived (service.wrapping's
`preceded` with `raw_requests`), and `MessageLimits.wrap`, innermost of the wrappers,
checks their size against the method's own limit and only then parses them. Outside it
runs authentication (service.auth): a caller who is no one is refused on its metadata,
and its megabytes are never read (a unary method is served as request-streaming, so
gRPC reads its request only when asked: service.wrapping's `read_when_admitted`). Bytes
that are not the method's message are the caller's mistake, INVALID_ARGUMENT like a
message over its limit (REQUEST_TOO_LARGE: a retry of the same message can never pass,
so not RESOURCE_EXHAUSTED, which asks to wait).

The table, written once in `MessageLimits.from_settings`: CreateTuningJob up to
`TUNING_GRPC_MAX_MESSAGE_BYTES`; each UploadDataset message up to a chunk of
`TUNING_UPLOAD_MAX_CHUNK_BYTES` and `TUNING_GRPC_SMALL_REQUEST_MAX_BYTES` for its other
fields; GenerateContent and StreamGenerateContent up to GENERATE_CONTENT_MAX_BYTES
(1 MiB); the Gemini API facade's CreateTunedModel, GenerateContent and
StreamGenerateContent as the methods that serve them; every other method, of
any service (a method added later too), up to `TUNING_GRPC_SMALL_REQUEST_MAX_BYTES`.

Every message is also charged to its tenant's receive budget (service.receive_budget): a
tenant in debt has its unary calls held back (and refused if the wait is long) before
they are read, its uploads slowed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
from google.protobuf.message import DecodeError

from core.errors import FieldViolation, InvalidArgument, Reason
from core.runtime.settings import Settings
from service.auth import principal_if_any
from service.receive_budget import ReceiveBudget
from service.wrapping import preceded, read_when_admitted

if TYPE_CHECKING:
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
    Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

CREATE_TUNING_JOB = "/tuning.v1.TuningService/CreateTuningJob"
UPLOAD_DATASET = "/tuning.v1.TuningService/UploadDataset"
GENERATE_CONTENT = "/tuning.v1.GenerationService/GenerateContent"
STREAM_GENERATE_CONTENT = "/tuning.v1.GenerationService/StreamGenerateContent"
FACADE_CREATE_TUNED_MODEL = "/google.ai.generativelanguage.v1beta.ModelService/CreateTunedModel"
FACADE_GENERATE_CONTENT = "/google.ai.generativelanguage.v1beta.GenerativeService/GenerateContent"
FACADE_STREAM_GENERATE_CONTENT = (
    "/google.ai.generativelanguage.v1beta.GenerativeService/StreamGenerateContent"
)
GENERATE_CONTENT_MAX_BYTES = 1024 * 1024
"""A GenerateContent request's limit, which bounds its text in all: a fixed 1 MiB (well
under what the tuned models take in), not a setting yet."""


@dataclass(frozen=True)
class Limit:
    """The most bytes one request message may have, and the setting that says so."""

    max_bytes: int
    setting: str


@dataclass(frozen=True)
class MessageLimits:
    """Per-method request limits: `by_method` (full method names) over `default`."""

    default: Limit
    by_method: Mapping[str, Limit] = field(default_factory=dict)
    budget: ReceiveBudget = field(default_factory=lambda: ReceiveBudget(0, 1))

    @classmethod
    def from_settings(cls, settings: Settings) -> MessageLimits:
        small = settings.grpc_small_request_max_bytes
        return cls(
            budget=ReceiveBudget(
                settings.tenant_receive_bytes_per_s, 2 * settings.grpc_max_message_bytes
            ),
            default=Limit(small, "TUNING_GRPC_SMALL_REQUEST_MAX_BYTES"),
            by_method={
                CREATE_TUNING_JOB: Limit(
                    settings.grpc_max_message_bytes, "TUNING_GRPC_MAX_MESSAGE_BYTES"
                ),
                UPLOAD_DATASET: Limit(
                    settings.upload_max_chunk_bytes + small, "TUNING_UPLOAD_MAX_CHUNK_BYTES"
                ),
                GENERATE_CONTENT: Limit(
                    GENERATE_CONTENT_MAX_BYTES, "GenerateContent's fixed limit, 1 MiB"
                ),
                STREAM_GENERATE_CONTENT: Limit(
                    GENERATE_CONTENT_MAX_BYTES, "GenerateContent's fixed limit, 1 MiB"
                ),
                # The Gemini API facade (service.gemini_facade): the same limits as the
                # methods they are served by.
                FACADE_CREATE_TUNED_MODEL: Limit(
                    settings.grpc_max_message_bytes, "TUNING_GRPC_MAX_MESSAGE_BYTES"
                ),
                FACADE_GENERATE_CONTENT: Limit(
                    GENERATE_CONTENT_MAX_BYTES, "GenerateContent's fixed limit, 1 MiB"
                ),
                FACADE_STREAM_GENERATE_CONTENT: Limit(
                    GENERATE_CONTENT_MAX_BYTES, "GenerateContent's fixed limit, 1 MiB"
                ),
            },
        )

    def of(self, method: str) -> Limit:
        return self.by_method.get(method, self.default)

    @property
    def largest_bytes(self) -> int:
        """What gRPC itself must let in: the largest of the limits."""
        return max([self.default.max_bytes, *(m.max_bytes for m in self.by_method.values())])

    def wrap(self, method: str, handler: Handler) -> Handler:
        """`handler`, taking raw bytes, checking and parsing them itself (see the module)."""
        limit, budget = self.of(method), self.budget
        name = method.rpartition("/")[2]
        parse = handler.request_deserializer or _as_is

        def turn() -> Awaitable[None] | None:
            tenant = principal_if_any()  # a method open to all is no one's to charge
            return budget.turn(tenant) if tenant else None

        def one(raw: bytes) -> Any:
            if tenant := principal_if_any():
                budget.charge(tenant, len(raw))
            return _parsed(raw, name, limit, parse)

        def each(raws: AsyncIterator[bytes], context: Context) -> AsyncIterator[Any]:
            if tenant := principal_if_any():
                budget.admit(tenant)
            return _each_parsed(raws, name, limit, parse, budget, principal_if_any())

        if handler.request_streaming:
            return preceded(handler, each, raw_requests=True)
        return read_when_admitted(handler, one, admit=turn)


def _as_is(raw: bytes) -> bytes:
    return raw


def _parsed(raw: bytes, method: str, limit: Limit, parse: Callable[[bytes], Any]) -> Any:
    if len(raw) > limit.max_bytes:
        raise too_large(method, len(raw), limit)
    try:
        return parse(raw)
    except (DecodeError, RecursionError, ValueError) as exc:
        # gRPC would answer INTERNAL ("Exception deserializing request"), but a caller's
        # bad bytes are the caller's mistake.
        raise InvalidArgument(
            f"the request is not a valid {method} message ({type(exc).__name__}: {exc})",
            [FieldViolation("request", "not a valid protobuf message for this method")],
        ) from None


async def _each_parsed(  # noqa: PLR0917 (one call site, the wrapper above)
    raws: AsyncIterator[bytes],
    method: str,
    limit: Limit,
    parse: Callable[[bytes], Any],
    budget: ReceiveBudget,
    tenant: str,
) -> AsyncIterator[Any]:
    async for raw in raws:
        if tenant:
            await budget.pace(tenant, len(raw))
        yield _parsed(raw, method, limit, parse)


def too_large(method: str, size_bytes: int, limit: Limit) -> InvalidArgument:
    """The refusal of a request message over its method's limit."""
    return InvalidArgument(
        f"the {method} request is {size_bytes} bytes; its limit is {limit.max_bytes} bytes "
        f"({limit.setting})",
        [FieldViolation("request", f"at most {limit.max_bytes} bytes ({limit.setting})")],
        reason=Reason.REQUEST_TOO_LARGE,
    )
