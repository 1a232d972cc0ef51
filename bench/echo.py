"""`python -m bench.echo`: the baseline server, a bare grpc.aio handler returning fixed bytes.

It answers `/bench.Echo/Echo` with a preset payload of the size of the real answer it is
compared with, so the same client on the same machine measures gRPC's own cost.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import grpc

from core.runtime.signals import stop_signals


def handler(payload: bytes) -> grpc.GenericRpcHandler:
    async def echo(request: bytes, context: Any) -> bytes:
        return payload

    method: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(
        echo, request_deserializer=None, response_serializer=None
    )
    return grpc.method_handlers_generic_handler("bench.Echo", {"Echo": method})


async def serve(response_bytes: int) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([handler(b"x" * response_bytes)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"ECHO_READY port={port}", flush=True)
    async with stop_signals() as stop:
        await stop.wait()
    await server.stop(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--response-bytes", type=int, required=True)
    asyncio.run(serve(parser.parse_args().response_bytes))


if __name__ == "__main__":
    main()
