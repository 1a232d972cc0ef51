"""Run the emulator inside the current event loop (tests, in-process fixtures, ``__main__``)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from emulator.app import create_app
from emulator.config import EmulatorConfig
from emulator.state import Clock

SHUTDOWN_GRACE_S = 5.0


@asynccontextmanager
async def running_emulator(
    config: EmulatorConfig,
    clock: Clock = time.time,
    host: str = "127.0.0.1",
    port: int = 0,
) -> AsyncIterator[str]:
    """Serve a fresh emulator on ``host:port`` (0: any free port) and yield its base URL.

    The server runs on the current event loop and is stopped (connections closed, state
    dropped) when the context exits. No signal handlers are installed.
    """
    runner = web.AppRunner(
        create_app(config, clock), handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE_S
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        yield base_url(host, _bound_port(runner))
    finally:
        await runner.cleanup()


def base_url(host: str, port: int) -> str:
    """``http://host:port``, with IPv6 literals in brackets."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _bound_port(runner: web.AppRunner) -> int:
    address = runner.addresses[0]
    port: int = address[1]
    return port
