"""Command line: ``python -m emulator [--host H] [--port P] ...``.

Every flag can also come from an environment variable (read here and nowhere else). Once
listening, prints ``EMULATOR_READY http://HOST:PORT`` on stdout so a parent process can learn
the port; stops cleanly (exit 0) on SIGTERM or SIGINT. Logs one line per request to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence

from emulator.config import EmulatorConfig, load_grants, load_service_accounts
from emulator.faults import load_fault_rules
from emulator.server import running_emulator

READY_PREFIX = "EMULATOR_READY"
_log = logging.getLogger("emulator")

# flag, environment variable, type, default, help
_FLAGS: tuple[tuple[str, str, Callable[[str], object], str | None, str], ...] = (
    ("--host", "EMULATOR_HOST", str, "127.0.0.1", "interface to listen on"),
    ("--port", "EMULATOR_PORT", int, "8089", "TCP port; 0 picks any free port"),
    ("--steps-per-second", "EMULATOR_STEPS_PER_SECOND", float, "2.0", "simulated training speed"),
    ("--grants-file", "EMULATOR_GRANTS_FILE", str, None, "JSON file of OAuth grants"),
    ("--token-ttl-s", "EMULATOR_TOKEN_TTL_S", int, "3600", "access token lifetime, seconds"),
    (
        "--faults-file",
        "EMULATOR_FAULTS_FILE",
        str,
        None,
        "JSON file of fault rules pending from the start (the POST /_emulator/faults body)",
    ),
    (
        "--rate-limit-rps",
        "EMULATOR_RATE_LIMIT_RPS",
        int,
        "0",
        "quota: API requests admitted in any sliding second, 429 above it (0: no limit)",
    ),
    (
        "--vertex-pending-s",
        "EMULATOR_VERTEX_PENDING_S",
        float,
        "5.0",
        "seconds a new Vertex tuning job stays JOB_STATE_PENDING",
    ),
    (
        "--vertex-cancelling-s",
        "EMULATOR_VERTEX_CANCELLING_S",
        float,
        "1.0",
        "seconds a cancelled Vertex tuning job stays JOB_STATE_CANCELLING",
    ),
    (
        "--head-start-steps",
        "EMULATOR_HEAD_START_STEPS",
        int,
        "0",
        "steps a new Gemini API tuned model's training has completed when it is created",
    ),
    (
        "--storage-buckets",
        "EMULATOR_STORAGE_BUCKETS",
        str,
        None,
        "comma-separated Cloud Storage buckets that exist (default: every bucket name)",
    ),
)


def parse_args(argv: Sequence[str] | None, env: Mapping[str, str]) -> argparse.Namespace:
    """Flags, with defaults taken from the environment when set there."""
    parser = argparse.ArgumentParser(
        prog="python -m emulator",
        description=(
            "Emulator of Google's tuning REST surfaces: the Gemini API, Vertex AI tuningJobs "
            "and Cloud Storage (training is simulated)."
        ),
    )
    for flag, variable, kind, default, text in _FLAGS:
        parser.add_argument(
            flag,
            type=kind,
            default=env.get(variable) or default,
            help=f"{text} (env {variable}; default {default})",
        )
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """The emulator settings the flags describe."""
    grants = load_grants(args.grants_file) if args.grants_file else ()
    accounts = load_service_accounts(args.grants_file) if args.grants_file else ()
    faults = load_fault_rules(args.faults_file) if args.faults_file else ()
    return EmulatorConfig(
        steps_per_second=args.steps_per_second,
        token_ttl_s=args.token_ttl_s,
        grants=grants,
        service_accounts=accounts,
        faults=faults,
        rate_limit_rps=args.rate_limit_rps,
        vertex_pending_s=args.vertex_pending_s,
        vertex_cancelling_s=args.vertex_cancelling_s,
        head_start_steps=args.head_start_steps,
        storage_buckets=_buckets(args.storage_buckets),
    )


def _buckets(text: str | None) -> frozenset[str] | None:
    return frozenset(b.strip() for b in text.split(",") if b.strip()) if text else None


async def serve(config: EmulatorConfig, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with running_emulator(config, host=host, port=port) as url:
        print(f"{READY_PREFIX} {url}", flush=True)
        await stop.wait()
    _log.info("emulator stopped")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for bad settings)."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")
    args = parse_args(argv, os.environ)
    try:
        config = config_from_args(args)
    except (OSError, ValueError) as exc:
        _log.error("emulator: bad settings: %s", exc)
        return 2
    if not config.grants:
        _log.warning("no grants configured: every POST /token will be refused")
    if config.rate_limit_rps:
        _log.info("rate limit: %d requests per sliding second", config.rate_limit_rps)
    if config.faults:
        _log.info("%d fault rule(s) pending from %s", len(config.faults), args.faults_file)
    asyncio.run(serve(config, args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
