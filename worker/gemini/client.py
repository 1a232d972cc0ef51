"""A small async REST client for the Gemini API's tunedModels surface.

One `httpx.AsyncClient` per process is shared by every call. Each call authenticates
with the tenant's TokenSource; a 401 earns one token refresh and one retry, no more.
"""

from __future__ import annotations

from typing import Any

import httpx

from worker.credentials import TokenSource
from worker.gemini.errors import error_from_response
from worker.upstream_errors import UpstreamRetryable, UpstreamUnauthenticated

Json = dict[str, Any]


class GeminiClient:
    """Thin calls on `tunedModels` and their operations; answers are JSON dicts."""

    def __init__(self, http: httpx.AsyncClient, base_url: str) -> None:
        self._http = http
        self._base = base_url.rstrip("/")

    async def create_tuned_model(self, auth: TokenSource, model_id: str, body: Json) -> Json:
        """POST /v1beta/tunedModels?tunedModelId=ID; answers the long-running Operation."""
        return await self._call(
            auth, "POST", "/v1beta/tunedModels", json=body, params={"tunedModelId": model_id}
        )

    async def get_tuned_model(self, auth: TokenSource, name: str) -> Json:
        return await self._call(auth, "GET", f"/v1beta/{name}")

    async def delete_tuned_model(self, auth: TokenSource, name: str) -> None:
        await self._call(auth, "DELETE", f"/v1beta/{name}")

    async def get_operation(self, auth: TokenSource, name: str) -> Json:
        return await self._call(auth, "GET", f"/v1beta/{name}")

    async def list_operations(self, auth: TokenSource, model: str) -> list[Json]:
        answer = await self._call(auth, "GET", f"/v1beta/{model}/operations")
        return list(answer.get("operations", []))

    async def cancel_operation(self, auth: TokenSource, name: str) -> None:
        """Bound on v1 only, as in Google's service configuration."""
        await self._call(auth, "POST", f"/v1/{name}:cancel", json={})

    async def _call(self, auth: TokenSource, method: str, path: str, **kwargs: Any) -> Json:
        try:
            return await self._send(auth, method, path, **kwargs)
        except UpstreamUnauthenticated:
            await auth.refresh()
            return await self._send(auth, method, path, **kwargs)

    async def _send(self, auth: TokenSource, method: str, path: str, **kwargs: Any) -> Json:
        headers = await auth.headers()
        try:
            response = await self._http.request(
                method, self._base + path, headers=headers, **kwargs
            )
        except httpx.TimeoutException as exc:
            raise UpstreamRetryable(
                f"{method} {path} timed out", status="DEADLINE_EXCEEDED"
            ) from exc
        except httpx.TransportError as exc:
            raise UpstreamRetryable(
                f"{method} {path} failed: {type(exc).__name__}", status="UNAVAILABLE"
            ) from exc
        if response.is_error:
            raise error_from_response(response)
        return response.json() if response.content else {}
