"""What every command shares: the global options, and the client and output they make.

The connection options and `--output` are accepted both before the command group and
after the command (`tunectl --output json jobs list` and `tunectl jobs list --output
json` mean the same), so each is declared once here and attached to the root group and
to every command by `global_options`. Their values are collected in the `Invocation` and
turned into a `ClientConfig` (cli.config: flags over environment over file) only when a
command first needs the API, so `--help` never reads a config file.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from cli.config import ClientConfig
from cli.connection import Client
from cli.output import Format, Output

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Invocation:
    """One run of `tunectl`: the options seen so far, and what they resolve to."""

    flags: dict[str, Any] = field(default_factory=dict)
    format: Format | None = None
    config_path: Path | None = None
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    config: ClientConfig | None = None
    _client: Client | None = None

    def client(self) -> Client:
        """The API client, built on first use; closed when the command ends."""
        if self._client is None:
            self.config = ClientConfig.from_sources(self.flags, self.env, self.config_path)
            self._client = Client(self.config)
            click.get_current_context().call_on_close(self._client.close)
        return self._client

    def output(self) -> Output:
        chosen = self.format or Format.TEXT
        return Output(chosen, Console(soft_wrap=False), Console(stderr=True))

    @property
    def endpoint(self) -> str:
        if self.config is not None:
            return self.config.endpoint
        return str(self.flags.get("endpoint") or self.env.get("TUNECTL_ENDPOINT") or "?")


def invocation() -> Invocation:
    return click.get_current_context().ensure_object(Invocation)


def _flag(name: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def store(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value is not None:
            ctx.ensure_object(Invocation).flags[name] = value

    return store


def _store_format(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(Invocation).format = Format(value)


def _store_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(Invocation).config_path = Path(value)


_OPTIONS: list[Callable[[F], F]] = [
    click.option(
        "--output",
        type=click.Choice([f.value for f in Format]),
        callback=_store_format,
        expose_value=False,
        help="text for people (default), json for scripts.",
    ),
    click.option(
        "--endpoint", callback=_flag("endpoint"), expose_value=False, help="API host:port."
    ),
    click.option(
        "--token", callback=_flag("token"), expose_value=False, help="The tenant's bearer token."
    ),
    click.option(
        "--tls/--no-tls",
        default=None,
        callback=_flag("tls"),
        expose_value=False,
        help="TLS with the system's roots (implied by any TLS file).",
    ),
    click.option(
        "--ca-file", callback=_flag("ca_file"), expose_value=False, help="PEM CA to verify the API."
    ),
    click.option(
        "--cert-file",
        callback=_flag("cert_file"),
        expose_value=False,
        help="PEM client certificate (mutual TLS).",
    ),
    click.option(
        "--key-file", callback=_flag("key_file"), expose_value=False, help="PEM key of --cert-file."
    ),
    click.option(
        "--timeout-s",
        type=float,
        callback=_flag("timeout_s"),
        expose_value=False,
        help="Deadline of each call, in seconds.",
    ),
    click.option(
        "--config",
        type=click.Path(dir_okay=False),
        callback=_store_config,
        expose_value=False,
        help="Config file (default: TUNECTL_CONFIG, or config.toml in the user config dir).",
    ),
]


def global_options(function: F) -> F:
    """Attach the connection options and `--output` to a command or group."""
    for option in reversed(_OPTIONS):
        function = option(function)
    return function


def stdout_is_tty() -> bool:
    return sys.stdout.isatty()


def resource_name(collection: str, value: str) -> str:
    """`collection/value`, accepting the bare id too (`j...` for `tuningJobs/j...`)."""
    return value if value.startswith(collection + "/") else f"{collection}/{value}"
