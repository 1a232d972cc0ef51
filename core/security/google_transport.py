"""google-auth's transport interface over httpx, so each process has one HTTP stack.

google-auth ships transports for requests, urllib3 and aiohttp but none for httpx;
refreshing a credential only needs `Request.__call__`, which is small to provide.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping

import google.auth.exceptions
import google.auth.transport
import httpx


class HttpxResponse(google.auth.transport.Response):
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    @property
    def data(self) -> bytes:
        return self._response.content


class HttpxRequest(google.auth.transport.Request):
    """A google-auth `Request` that sends with a synchronous `httpx.Client`.

    A request without a timeout of its own gets the client's (`TUNING_TOKEN_TIMEOUT_S`).
    `on_response` sees every answer (the CredentialService reads the granted scopes).
    """

    def __init__(
        self,
        client: httpx.Client,
        *,
        on_response: Callable[[HttpxResponse], None] | None = None,
    ) -> None:
        self._client = client
        self._on_response = on_response

    @classmethod
    @contextlib.contextmanager
    def session(cls, timeout_s: float) -> Iterator[HttpxRequest]:
        """A request over a client of its own, closed on exit."""
        with httpx.Client(timeout=timeout_s) as client:
            yield cls(client)

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: object,
    ) -> HttpxResponse:
        try:
            response = self._client.request(
                method,
                url,
                content=body,
                headers=headers,
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
            )
        except httpx.HTTPError as exc:
            raise google.auth.exceptions.TransportError(f"{method} {url}: {exc}") from exc
        answer = HttpxResponse(response)
        if self._on_response is not None:
            self._on_response(answer)
        return answer
