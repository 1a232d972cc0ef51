"""Reading what the protobuf parser would silently drop.

`Hyperparameters.learning_rate_option` is a oneof, so when a request carries both
learning_rate and learning_rate_multiplier on the wire, the parser keeps the last one
and drops the other without a word. A caller that set both has made a mistake we
should report, not guess at. So the raw request is parsed a second time into a probe
type in which the two fields are independent (proto2 fields have presence), built
from the real descriptors at import, and its answer travels with the parsed request.
"""

from __future__ import annotations

from typing import NamedTuple

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

from tuning.v1 import tuning_job_pb2, tuning_service_pb2

_PACKAGE = "tuning.internal.probe"


class ParsedCreate(NamedTuple):
    """A CreateTuningJobRequest and whether its wire form set both learning-rate fields."""

    request: tuning_service_pb2.CreateTuningJobRequest
    both_learning_rates: bool


def _number(message: type[Message], field: str) -> int:
    return int(message.DESCRIPTOR.fields_by_name[field].number)


def _probe_type() -> type[Message]:
    file = descriptor_pb2.FileDescriptorProto(name="tuning_probe.proto", package=_PACKAGE)
    file.syntax = "proto2"
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
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.Request"))


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


_Probe = _probe_type()


def parse_create(raw: bytes) -> ParsedCreate:
    """The request deserializer for CreateTuningJob."""
    request = tuning_service_pb2.CreateTuningJobRequest.FromString(raw)
    hyper = request.tuning_job.hyperparameters
    if hyper.WhichOneof("learning_rate_option") is None:
        return ParsedCreate(request, both_learning_rates=False)
    probe = _Probe.FromString(raw).tuning_job.hyperparameters  # type: ignore[attr-defined]
    both = probe.HasField("learning_rate") and probe.HasField("learning_rate_multiplier")
    return ParsedCreate(request, both_learning_rates=bool(both))
