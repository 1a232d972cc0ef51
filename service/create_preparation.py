"""A CreateTuningJob's heavy work, parsing, validating and encoding, kept off the event loop.

A create may be as large as `TUNING_GRPC_MAX_MESSAGE_BYTES`, and protobuf parses a map
or repeated field entry by entry: a 1.3 MB request of 100,000 labels takes 70 ms to
parse, a 16 MB one of tiny examples most of a second, all of it holding the event loop
that serves every tenant's reads. So the servicer is handed the request as bytes with only
its head read (`read_head`: its request_id and validate_only, enough for the quotas, which
come before any heavy work), and `prepare_create` does the rest: on the event loop for a
request no larger than `TUNING_GRPC_SMALL_REQUEST_MAX_BYTES` (a millisecond or two), and
in the API's pool of checking processes (service.dataset_checker: a tenant's turns there
are bounded) for a larger one. What comes back is small: the request without its
examples, the examples already encoded as stored, their count and the request's
fingerprint; or the refusal, as plain data, since an exception does not cross a process
boundary intact. What the tenant's provider accepts is part of the validation, so the
provider goes with the bytes: as a value (a small frozen dataclass), never the tenants
file, which a child process does not have.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import DecodeError

from core.domain.job import encode_example_pairs
from core.domain.providers import ProviderChoice
from core.errors import FieldViolation, InvalidArgument, Reason
from core.runtime.settings import Settings
from service.convert import request_hash
from service.request_parsing import parse_create, parse_head
from service.validation import validate_create
from tuning.v1 import tuning_service_pb2

GEMINI_API = ProviderChoice()
"""The default provider (a frozen value, safe as a default argument)."""


@dataclass(frozen=True)
class CreateCall:
    """A CreateTuningJob as received: its bytes, and the two fields the quotas need."""

    raw: bytes
    request_id: str
    validate_only: bool


@dataclass(frozen=True)
class PreparedCreate:
    """A valid create, ready to store: nothing in it needs work per example any more."""

    request: tuning_service_pb2.CreateTuningJobRequest  # without its training examples
    examples: bytes  # core.domain.job.encode_example_pairs of the inline examples
    example_count: int
    request_hash: str  # service.convert.request_hash of the whole request
    characters: int = 0  # of the inline examples' inputs and outputs (core.domain.usage)


@dataclass(frozen=True)
class _Prepared:
    """PreparedCreate as a child process returns it (the request as bytes)."""

    request: bytes
    examples: bytes
    example_count: int
    request_hash: str
    characters: int


@dataclass(frozen=True)
class _Refused:
    message: str
    violations: list[FieldViolation]
    reason: Reason


def read_head(raw: bytes) -> CreateCall:
    """The request deserializer for CreateTuningJob: reads request_id and validate_only,
    and skips the job (one length-delimited field) without parsing it."""
    try:
        request_id, validate_only = parse_head(raw)
    except DecodeError as exc:
        raise InvalidArgument(
            f"the request is not a valid CreateTuningJob message ({exc})",
            [FieldViolation("request", "not a valid protobuf message for this method")],
        ) from None
    return CreateCall(raw, request_id, validate_only)


def is_small(call: CreateCall, settings: Settings) -> bool:
    """Whether preparing `call` is cheap enough for the event loop."""
    return len(call.raw) <= settings.grpc_small_request_max_bytes


def prepare_create(
    raw: bytes, settings: Settings, provider: ProviderChoice = GEMINI_API
) -> _Prepared | _Refused:
    """Parse, validate (for the tenant's `provider`) and encode a create (in a child
    process, for a large one)."""
    outcome = prepare_here(raw, settings, provider)
    if isinstance(outcome, _Refused):
        return outcome
    return _Prepared(
        outcome.request.SerializeToString(),
        outcome.examples,
        outcome.example_count,
        outcome.request_hash,
        outcome.characters,
    )


def prepare_here(
    raw: bytes, settings: Settings, provider: ProviderChoice = GEMINI_API
) -> PreparedCreate | _Refused:
    """`prepare_create` for the event loop: the request stays a message (a small one is
    not serialized to cross a process boundary, only to be parsed again)."""
    try:
        parsed = parse_create(raw)
        validate_create(parsed, settings, provider)
    except InvalidArgument as exc:
        return _Refused(exc.message, exc.violations, exc.reason)
    except (DecodeError, RecursionError, ValueError) as exc:
        return _Refused(
            f"the request is not a valid CreateTuningJob message ({type(exc).__name__}: {exc})",
            [FieldViolation("request", "not a valid protobuf message for this method")],
            Reason.INVALID_ARGUMENT,
        )
    request = parsed.request
    fingerprint = request_hash(request)
    encoded = encode_example_pairs(parsed.examples)
    characters = sum(len(given) + len(wanted) for given, wanted in parsed.examples)
    request.tuning_job.ClearField("training_examples")
    return PreparedCreate(request, encoded, len(parsed.examples), fingerprint, characters)


def unpacked(outcome: PreparedCreate | _Prepared | _Refused) -> PreparedCreate:
    """What `prepare_create` (or `prepare_here`) returned, in the API process: the create,
    or its refusal."""
    if isinstance(outcome, _Refused):
        raise InvalidArgument(outcome.message, outcome.violations, reason=outcome.reason)
    if isinstance(outcome, PreparedCreate):
        return outcome
    return PreparedCreate(
        request=tuning_service_pb2.CreateTuningJobRequest.FromString(outcome.request),
        examples=outcome.examples,
        example_count=outcome.example_count,
        request_hash=outcome.request_hash,
        characters=outcome.characters,
    )
