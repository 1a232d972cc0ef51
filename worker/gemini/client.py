"""An async REST client for the Gemini API's tunedModels surface.

One `httpx.AsyncClient` per process is shared by every call. Each call authenticates
with the tenant's TokenSource; a 401 earns one token refresh and one retry, no more.
Each request waits at most the caller's remaining deadline (worker.deadline).

A call with an upstream side effect (create, delete, cancel: `effect=True` on `_call`,
the one place that says which calls are) is fenced (worker.fence): the fence is checked
after every wait (token, rate limiter) and immediately before the request leaves, on
every attempt, and the request is given no more time than the fence has left.
"""

from __future__ import annotations

import re
import time
from typing import Any, Protocol

import httpx

from core.errors import Reason, UpstreamRejected, UpstreamRetryable, UpstreamUnauthenticated
from core.redis.token_bucket import Unlimited
from core.runtime.metrics import Metrics
from worker import fence
from worker.credentials import TokenSource
from worker.deadline import remaining_s
from worker.gemini.envelope import error_from_response

Json = dict[str, Any]


class Limiter(Protocol):
    async def acquire(self) -> None:
        """Wait for the right to send one request (core.redis.token_bucket)."""
        ...


class GeminiClient:
    """Calls on `tunedModels` and their operations; answers are proto3-JSON dicts."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        limiter: Limiter | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._http = http
        self._base = base_url.rstrip("/")
        self._limiter: Limiter = limiter or Unlimited()

    async def create_tuned_model(self, auth: TokenSource, model_id: str, body: Json) -> Json:
        """POST /v1beta/tunedModels?tunedModelId=ID; answers the long-running Operation."""
        params = {"tunedModelId": model_id}
        return await self._call(
            auth, "POST", "/v1beta/tunedModels", effect=True, json=body, params=params
        )

    async def get_tuned_model(self, auth: TokenSource, name: str) -> Json:
        return await self._call(auth, "GET", f"/v1beta/{name}")

    async def list_tuned_models(
        self, auth: TokenSource, *, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[Json], str]:
        """GET /v1beta/tunedModels: one page of the caller's models and the next page's
        token ("" on the last page)."""
        params = _page_params(page_size, page_token)
        answer = await self._call(auth, "GET", "/v1beta/tunedModels", params=params)
        return list(answer.get("tunedModels", [])), str(answer.get("nextPageToken", ""))

    async def delete_tuned_model(self, auth: TokenSource, name: str) -> None:
        await self._call(auth, "DELETE", f"/v1beta/{name}", effect=True)

    async def get_operation(self, auth: TokenSource, name: str) -> Json:
        return await self._call(auth, "GET", f"/v1beta/{name}")

    async def list_operations(
        self, auth: TokenSource, model: str, *, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[Json], str]:
        params = _page_params(page_size, page_token)
        answer = await self._call(auth, "GET", f"/v1beta/{model}/operations", params=params)
        return list(answer.get("operations", [])), str(answer.get("nextPageToken", ""))

    async def cancel_operation(self, auth: TokenSource, name: str) -> None:
        """Bound on v1 only, as in Google's service configuration."""
        await self._call(auth, "POST", f"/v1/{name}:cancel", effect=True, json={})

    async def generate_content(self, auth: TokenSource, model: str, text: str) -> Json:
        """POST {model}:generateContent with one user turn of `text`."""
        body = {"contents": [{"role": "user", "parts": [{"text": text}]}]}
        return await self._call(auth, "POST", f"/v1beta/{model}:generateContent", json=body)

    async def _call(
        self, auth: TokenSource, method: str, path: str, *, effect: bool = False, **kwargs: Any
    ) -> Json:
        """One request, again once after a 401; `effect`: it changes something upstream."""
        try:
            return await self._send(auth, method, path, effect, **kwargs)
        except UpstreamUnauthenticated:
            await auth.refresh()
        try:
            return await self._send(auth, method, path, effect, **kwargs)
        except UpstreamUnauthenticated as exc:  # Refused twice: the credential is the problem.
            raise UpstreamRejected(
                f"{exc.message} (again after a token refresh)",
                http_status=401,
                status=exc.status or "UNAUTHENTICATED",
                upstream_reason=exc.upstream_reason,
                reason=Reason.UPSTREAM_UNAUTHENTICATED,
            ) from exc

    async def _send(
        self, auth: TokenSource, method: str, path: str, effect: bool, **kwargs: Any
    ) -> Json:
        headers = await auth.headers()
        await self._limiter.acquire()
        # Nothing is awaited from here until the request leaves.
        fenced_s = fence.check(f"{method} {path}") if effect else None
        timeout = _timeout(self._http.timeout, fenced_s)
        route, started, outcome = _route(method, path), time.perf_counter(), "error"
        try:
            response = await self._http.request(
                method, self._base + path, headers=headers, timeout=timeout, **kwargs
            )
            outcome = str(response.status_code)
        except httpx.TimeoutException as exc:
            outcome = "timeout"
            raise UpstreamRetryable(
                f"{method} {path} timed out", status="DEADLINE_EXCEEDED"
            ) from exc
        except httpx.TransportError as exc:
            outcome = "transport_error"
            raise UpstreamRetryable(
                f"{method} {path} failed: {type(exc).__name__}", status="UNAVAILABLE"
            ) from exc
        finally:
            if self._metrics is not None:
                self._metrics.upstream_requests.labels(route, outcome).inc()
                self._metrics.upstream_latency.labels(route).observe(time.perf_counter() - started)
        if response.is_error:
            raise error_from_response(response)
        return response.json() if response.content else {}


def _route(method: str, path: str) -> str:
    """`GET /v1beta/tunedModels/*/operations/*`: the request without its ids, for a label."""
    path = re.sub(r"tunedModels/[^/:]+", "tunedModels/*", path)
    return f"{method} {re.sub(r'operations/[^/:]+', 'operations/*', path)}"


def _page_params(page_size: int, page_token: str) -> dict[str, str]:
    params = {"pageSize": str(page_size)} if page_size else {}
    return params | ({"pageToken": page_token} if page_token else {})


def _timeout(default: httpx.Timeout, fenced_s: float | None = None) -> httpx.Timeout:
    """The client's timeouts, shortened to the caller's remaining deadline and, for a side
    effect, to the `fenced_s` its fence has left.

    The wait for a pooled connection and the connect come before any byte is sent, so
    under a fence they share its time: the request has begun to leave before the lease
    may have passed to another worker.
    """
    left = remaining_s()
    if left is not None and left <= 0:
        raise UpstreamRetryable(
            "the caller's deadline passed before the request", status="DEADLINE_EXCEEDED"
        )
    before_send = fenced_s / 2 if fenced_s is not None else None
    left, before_send = _least(left, fenced_s), _least(left, before_send)
    return httpx.Timeout(
        connect=_least(default.connect, before_send),
        read=_least(default.read, left),
        write=_least(default.write, left),
        pool=_least(default.pool, before_send),
    )


def _least(*limits_s: float | None) -> float | None:
    """The shortest of the limits given (None: no limit)."""
    given = [s for s in limits_s if s is not None]
    return min(given) if given else None
