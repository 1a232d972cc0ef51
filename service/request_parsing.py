"""Reading what the protobuf parser would silently drop.

`Hyperparameters.learning_rate_option` is a oneof, so when a request carries both
learning_rate and learning_rate_multiplier on the wire, the parser keeps the last one
and drops the other without a word. A caller that set both has made a mistake we
should report, not guess at. So the raw request is parsed a second time into a probe
type in which the two fields are independent (proto2 fields have presence), built
from the real descriptors at import, and its answer travels with the parsed request.

A second probe, `Head`, has only a create's request_id and validate_only: reading them
costs nothing however large the job beside them (service.create_preparation).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

from tuning.v1 import tuning_job_pb2, tuning_service_pb2

_PACKAGE = "tuning.internal.probe"


class ParsedCreate(NamedTuple):
    """A CreateTuningJobRequest, whether its wire form set both learning-rate fields, and
    its inline examples as (text_input, output) pairs, read once for both their
    validation and their encoding (each read of a protobuf field costs)."""

    request: tuning_service_pb2.CreateTuningJobRequest
    both_learning_rates: bool
    examples: list[tuple[str, str]]


def _number(message: type[Message], field: str) -> int:
    return int(message.DESCRIPTOR.fields_by_name[field].number)


def _probe_types() -> tuple[type[Message], type[Message]]:
    file = descriptor_pb2.FileDescriptorProto(name="tuning_probe.proto", package=_PACKAGE)
    file.syntax = "proto2"
    head = file.message_type.add(name="Head")
    for name, kind in (
        ("request_id", descriptor_pb2.FieldDescriptorProto.TYPE_STRING),
        ("validate_only", descriptor_pb2.FieldDescriptorProto.TYPE_BOOL),
    ):
        head.field.add(
            name=name,
            number=_number(tuning_service_pb2.CreateTuningJobRequest, name),
            type=kind,
            label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
        )
    hyper = file.message_type.add(name="Hyper")
    for name in ("learning_rate", "learning_rate_multiplier"):
        hyper.field.add(
            name=name,
            number=_number(tuning_job_pb2.Hyperparameters, name),
            type=descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE,
            label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
        )
    _message_field(file, "Job", "hyperparameters", tuning_job_pb2.TuningJob, "Hyper")
    _message_field(file, "Request", "tuning_job", tuning_service_pb2.CreateTuningJobRequest, "Job")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return tuple(  # type: ignore[return-value]
        message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
        for name in ("Request", "Head")
    )


def _message_field(
    file: descriptor_pb2.FileDescriptorProto,
    name: str,
    field: str,
    real: type[Message],
    field_type: str,
) -> None:
    message = file.message_type.add(name=name)
    message.field.add(
        name=field,
        number=_number(real, field),
        type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
        type_name=f".{_PACKAGE}.{field_type}",
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    )


_Probe, _Head = _probe_types()


def parse_head(raw: bytes) -> tuple[str, bool]:
    """A CreateTuningJobRequest's request_id and validate_only, its job left unparsed
    (an unknown field to the Head type, skipped by its length prefix and dropped)."""
    head: Any = _Head()
    head.ParseFromString(raw)
    return str(head.request_id), bool(head.validate_only)


def parse_create(raw: bytes) -> ParsedCreate:
    """The request deserializer for CreateTuningJob."""
    request = tuning_service_pb2.CreateTuningJobRequest.FromString(raw)
    job = request.tuning_job
    examples = [(e.text_input, e.output) for e in job.training_examples]
    if job.hyperparameters.WhichOneof("learning_rate_option") is None:
        return ParsedCreate(request, False, examples)
    probe = _Probe.FromString(raw).tuning_job.hyperparameters  # type: ignore[attr-defined]
    both = probe.HasField("learning_rate") and probe.HasField("learning_rate_multiplier")
    return ParsedCreate(request, bool(both), examples)
