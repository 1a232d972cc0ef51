"""What standard tools see: gRPC health and server reflection."""

from __future__ import annotations

from typing import Any

from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.harness import System


async def test_health_reports_serving(api_only: System) -> None:
    stub: Any = health_pb2_grpc.HealthStub(api_only.channel)  # typed for sync channels
    for service in ("", "tuning.v1.TuningService"):
        answer = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_api(api_only: System) -> None:
    channel: Any = api_only.channel
    stub: Any = reflection_pb2_grpc.ServerReflectionStub(channel)  # typed for sync channels
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    responses = [r async for r in stub.ServerReflectionInfo(iter([request]))]
    names = {s.name for s in responses[0].list_services_response.service}
    assert "tuning.v1.TuningService" in names
