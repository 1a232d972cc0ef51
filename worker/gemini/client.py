"""An async REST client for the Gemini API's tunedModels surface.

Authentication, the one retry after a 401, rate limiting, deadlines, fencing and the
translation of error envelopes are core.upstream_http's, shared with the Vertex AI
client. A call with an upstream side effect (create, delete, cancel) says so with
`effect=True`: the one place that says which calls are fenced.
"""

from __future__ import annotations

import re

import aiohttp

from core.runtime.metrics import Metrics
from core.security.token_source import TokenSource
from core.upstream_http import Json, Limiter, UpstreamHttp, page_params
from worker import fence
from worker.gemini.json_mapping import operation_from_json


class GeminiClient:
    """Calls on `tunedModels` and their operations; answers are proto3-JSON dicts."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        base_url: str,
        limiter: Limiter | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._api = UpstreamHttp(http, base_url, _route, limiter, metrics, fence=fence.check)

    async def create_tuned_model(self, auth: TokenSource, model_id: str, body: Json) -> Json:
        """POST /v1beta/tunedModels?tunedModelId=ID; answers the long-running Operation."""
        params = {"tunedModelId": model_id}
        return await self._api.call(
            auth, "POST", "/v1beta/tunedModels", effect=True, json=body, params=params
        )

    async def get_tuned_model(self, auth: TokenSource, name: str) -> Json:
        return await self._api.call(auth, "GET", f"/v1beta/{name}")

    async def list_tuned_models(
        self, auth: TokenSource, *, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[Json], str]:
        """GET /v1beta/tunedModels: one page of the caller's models and the next page's
        token ("" on the last page)."""
        params = page_params(page_size, page_token)
        answer = await self._api.call(auth, "GET", "/v1beta/tunedModels", params=params)
        return list(answer.get("tunedModels", [])), str(answer.get("nextPageToken", ""))

    async def delete_tuned_model(self, auth: TokenSource, name: str) -> None:
        await self._api.call(auth, "DELETE", f"/v1beta/{name}", effect=True)

    async def get_operation(self, auth: TokenSource, name: str) -> Json:
        """The create Operation `name`, its snapshots unparsed (json_mapping's
        `operation_from_json`): a status poll's request."""
        return await self._api.call(auth, "GET", f"/v1beta/{name}", decode=operation_from_json)

    async def list_operations(
        self, auth: TokenSource, model: str, *, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[Json], str]:
        params = page_params(page_size, page_token)
        answer = await self._api.call(auth, "GET", f"/v1beta/{model}/operations", params=params)
        return list(answer.get("operations", [])), str(answer.get("nextPageToken", ""))

    async def cancel_operation(self, auth: TokenSource, name: str) -> None:
        """Bound on v1 only, as in Google's service configuration."""
        await self._api.call(auth, "POST", f"/v1/{name}:cancel", effect=True, json={})

    async def generate_content(self, auth: TokenSource, model: str, text: str) -> Json:
        """POST {model}:generateContent with one user turn of `text`."""
        body = {"contents": [{"role": "user", "parts": [{"text": text}]}]}
        return await self._api.call(auth, "POST", f"/v1beta/{model}:generateContent", json=body)


_MODEL_ID = re.compile(r"tunedModels/[^/:]+")
_OPERATION_ID = re.compile(r"operations/[^/:]+")


def _route(path: str) -> str:
    """`/v1beta/tunedModels/*/operations/*`: the path without its ids, for a label (every
    request makes one: compiled once, plain replacements)."""
    return _OPERATION_ID.sub("operations/*", _MODEL_ID.sub("tunedModels/*", path))
