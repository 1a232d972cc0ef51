"""The channel to the API and the stubs on it, built from a `ClientConfig`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TypeVar

import grpc

from cli.config import ClientConfig
from cli.errors import ConfigError
from tuning.v1 import generation_service_pb2_grpc, tuning_service_pb2_grpc

Answer = TypeVar("Answer")
Item = TypeVar("Item")


class Page(Protocol):
    """A List answer: its items, in a field of each method's own, and the next token."""

    @property
    def next_page_token(self) -> str: ...


PageT = TypeVar("PageT", bound=Page)
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""Largest answer taken: a job with every snapshot of a long run fits many times over."""


class Client:
    """The TuningService and GenerationService of one endpoint, with the caller's token.

    A context manager: the channel closes on exit."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self._channel = _channel(config)
        self.tuning = tuning_service_pb2_grpc.TuningServiceStub(self._channel)
        self.generation = generation_service_pb2_grpc.GenerationServiceStub(self._channel)
        token = config.token
        self.metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token else ()
        )

    @property
    def timeout_s(self) -> float:
        return self.config.timeout_s

    def call(self, method: Callable[..., Answer], request: Any) -> Answer:
        """One unary call of `method` (a stub's) with the caller's token and timeout."""
        return method(request, metadata=self.metadata, timeout=self.timeout_s)

    def collect(
        self,
        method: Callable[..., PageT],
        request_for: Callable[[str, int], Any],
        items_of: Callable[[PageT], Sequence[Item]],
        limit: int,
    ) -> tuple[list[Item], str]:
        """Up to `limit` items of a List `method` over its pages, and the token after them.

        `request_for(page_token, room)` makes each page's request, asking for at most
        `room` more; an empty page ends it too (a job's events end at its last one)."""
        found: list[Item] = []
        token = ""
        while len(found) < limit:
            page = self.call(method, request_for(token, limit - len(found)))
            items = items_of(page)
            found.extend(items)
            token = page.next_page_token
            if not token or not items:
                break
        return found, token

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _channel(config: ClientConfig) -> grpc.Channel:
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        # gRPC's own reconnect backoff starts at 1 s and grows to 120 s; `jobs watch`
        # reconnects on a schedule of its own (cli.watch) and needs the channel to try too.
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.min_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 5000),
    ]
    if not config.uses_tls:
        return grpc.insecure_channel(config.endpoint, options=options)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(config.ca_file),
        private_key=_read(config.key_file),
        certificate_chain=_read(config.cert_file),
    )
    return grpc.secure_channel(config.endpoint, credentials, options=options)


def _read(path: str) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
