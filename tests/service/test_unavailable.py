"""A lost Redis: calls fail fast with UNAVAILABLE and RetryInfo, never hang or say INTERNAL."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2

from core.redis.client import connect
from core.runtime.settings import Settings
from core.security.tenants import TenantDirectory
from devstack.redis_server import free_port
from devstack.tenants import LocalTenant, write_tenant_files
from service.process import start_api
from tests.rpc_errors import detail
from tuning.v1 import tuning_service_pb2, tuning_service_pb2_grpc


async def test_calls_fail_fast_with_unavailable_when_redis_is_gone(tmp_path: Path) -> None:
    tenant = LocalTenant("team-a")
    tenants_file, _ = write_tenant_files(tmp_path, [tenant])
    redis = connect(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5)
    api = await start_api(
        Settings(), redis, TenantDirectory.from_file(tenants_file), listen="127.0.0.1:0"
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{api.port}") as channel:
            stub = tuning_service_pb2_grpc.TuningServiceStub(channel)
            started = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.GetTuningJob(
                    tuning_service_pb2.GetTuningJobRequest(name="tuningJobs/j" + "a" * 19),
                    metadata=(("authorization", f"Bearer {tenant.token}"),),
                    timeout=10,
                )
            assert time.monotonic() - started < 5
    finally:
        await api.stop(0)
        await redis.aclose()
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert detail(caught.value, error_details_pb2.RetryInfo).retry_delay.seconds >= 1
    assert "Traceback" not in (caught.value.details() or "")
