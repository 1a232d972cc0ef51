"""What operators see: JSON logs without secrets, RPC metrics, request ids, /metrics, drain."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import signal
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from prometheus_client import generate_latest

from core.runtime import logs
from core.runtime.metrics import Metrics
from devstack.redis_server import free_port
from tests.harness import System
from tests.rpc_errors import detail
from tuning.v1 import generation_service_pb2 as gen
from tuning.v1 import generation_service_pb2_grpc, tuning_service_pb2, tuning_service_pb2_grpc


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_log_lines_are_json_with_context_and_secrets_redacted() -> None:
    record = logging.LogRecord(
        "worker",
        logging.INFO,
        __file__,
        1,
        "refreshing with refresh_token=1//0gSecretSecretSecret and Bearer ya29.abc.def",
        None,
        None,
    )
    tokens = [logs.request_id.set("req-1"), logs.tenant.set("team-a"), logs.job.set("tuningJobs/j")]
    try:
        line = json.loads(logs.JsonFormatter().format(record))
    finally:
        for var, token in zip((logs.request_id, logs.tenant, logs.job), tokens, strict=True):
            var.reset(token)
    assert line["request_id"] == "req-1" and line["tenant"] == "team-a"
    assert line["job"] == "tuningJobs/j" and line["level"] == "INFO"
    assert "Secret" not in line["msg"] and "ya29" not in line["msg"]
    assert line["msg"].count("[REDACTED]") == 2


async def test_rpcs_are_counted_by_method_and_code_and_errors_name_their_request(
    api_only: System,
) -> None:
    job = await api_only.create()
    await api_only.get(job.name)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api_only.stub.GetTuningJob(
            tuning_service_pb2.GetTuningJobRequest(name="tuningJobs/j" + "a" * 19),
            metadata=(*api_only.auth(), ("x-request-id", "trace-42")),
        )
    assert ("x-request-id", "trace-42") in list(caught.value.trailing_metadata() or ())
    assert detail(caught.value, error_details_pb2.RequestInfo).request_id == "trace-42"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await api_only.stub.ListTuningJobs(tuning_service_pb2.ListTuningJobsRequest())
    made_up = detail(refused.value, error_details_pb2.RequestInfo).request_id
    assert len(made_up) >= 16
    assert ("x-request-id", made_up) in list(refused.value.trailing_metadata() or ())
    m, prefix = api_only.api_metrics, "/tuning.v1.TuningService/"
    assert sample(m, "tuning_rpcs_total", method=prefix + "CreateTuningJob", code="OK") == 1
    assert sample(m, "tuning_rpcs_total", method=prefix + "GetTuningJob", code="NOT_FOUND") == 1
    assert (
        sample(m, "tuning_rpcs_total", method=prefix + "ListTuningJobs", code="UNAUTHENTICATED")
        == 1
    )
    assert sample(m, "tuning_rpc_duration_seconds_count", method=prefix + "GetTuningJob") == 2


async def test_a_stream_of_answers_is_counted_and_its_error_names_its_request(
    api_only: System,
) -> None:
    stub = generation_service_pb2_grpc.GenerationServiceStub(api_only.channel)
    refused = gen.GenerateContentRequest(model="tuningJobs/j" + "a" * 19)  # no contents
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in stub.StreamGenerateContent(
            refused, metadata=(*api_only.auth(), ("x-request-id", "trace-43"))
        ):
            pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert detail(caught.value, error_details_pb2.RequestInfo).request_id == "trace-43"
    method = "/tuning.v1.GenerationService/StreamGenerateContent"
    counted = sample(
        api_only.api_metrics, "tuning_rpcs_total", method=method, code="INVALID_ARGUMENT"
    )
    assert counted == 1


async def test_the_worker_exports_upstream_requests_refreshes_and_queue_gauges(
    system: System,
) -> None:
    job = await system.create()
    await system.finish_training(job.name)
    m = system.worker_metrics
    created = sample(
        m, "tuning_upstream_requests_total", method="POST /v1beta/tunedModels", status="200"
    )
    assert created == 1
    assert sample(m, "tuning_token_refreshes_total", tenant="team-a", outcome="ok") >= 1
    assert sample(system.api_metrics, "tuning_redis_up") == 1
    text = generate_latest(m.registry).decode()
    assert "tuning_upstream_request_duration_seconds_bucket" in text


async def test_metrics_are_served_over_http() -> None:
    metrics = Metrics.create()
    port = free_port()
    metrics.serve(f"127.0.0.1:{port}")
    metrics.rpcs.labels("/x", "OK").inc()
    async with httpx.AsyncClient() as http:
        body = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    assert 'tuning_rpcs_total{code="OK",method="/x"} 1.0' in body


async def test_sigterm_drains_in_flight_rpcs_then_exits_zero(api_only: System) -> None:
    settings = dataclasses.replace(api_only.settings, grpc_grace_s=10.0)
    api = await api_only.processes.start_api(settings)  # a real `python -m service`
    async with grpc.aio.insecure_channel(api.target) as channel:
        stub: Any = tuning_service_pb2_grpc.TuningServiceStub(channel)
        upload = stub.UploadDataset(metadata=api_only.auth())
        await upload.write(_dataset_header())
        await upload.initial_metadata()  # sent as the handler starts: the call is in flight
        api.child.process.send_signal(signal.SIGTERM)  # mid-upload
        await asyncio.sleep(0.5)
        await upload.write(tuning_service_pb2.UploadDatasetRequest(chunk=_rows(25)))
        await upload.done_writing()
        dataset = await upload  # the in-flight call finishes
        assert dataset.stats.example_count == 25
    assert await api.child.process.wait() == 0


def _dataset_header() -> tuning_service_pb2.UploadDatasetRequest:
    from tuning.v1 import dataset_pb2

    return tuning_service_pb2.UploadDatasetRequest(
        dataset=dataset_pb2.Dataset(format=dataset_pb2.Dataset.JSONL)
    )


def _rows(count: int) -> bytes:
    return "".join(
        json.dumps({"text_input": str(n), "output": "x"}) + "\n" for n in range(count)
    ).encode()
