"""An async REST client for Vertex AI (aiplatform v1): tuning jobs, models and endpoints.

Authentication, the one retry after a 401, rate limiting, deadlines, fencing and the
translation of error envelopes are core.upstream_http's, shared with the Gemini client.
A call with an upstream side effect says so with `effect=True`: the one place that says
which calls are fenced. Answers are proto3-JSON dicts.
"""

from __future__ import annotations

import re

import aiohttp

from core.domain.providers import vertex_host
from core.runtime.metrics import Metrics
from core.security.token_source import TokenSource
from core.upstream_http import Json, Limiter, UpstreamHttp, page_params
from worker import fence

API_VERSION = "v1"


class VertexClient:
    """Calls on `projects.locations.tuningJobs`, `models`, `endpoints` and operations."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        location: str,
        *,
        base_url: str = "",
        limiter: Limiter | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """`base_url` overrides the location's host (the emulator's, in tests)."""
        base = base_url or vertex_host(location)
        self._api = UpstreamHttp(http, base, _route, limiter, metrics, fence=fence.check)

    async def create_tuning_job(self, auth: TokenSource, parent: str, body: Json) -> Json:
        """POST {parent}/tuningJobs: the TuningJob, named by the server."""
        path = _path(parent, "/tuningJobs")
        return await self._api.call(auth, "POST", path, effect=True, json=body)

    async def get_tuning_job(self, auth: TokenSource, name: str) -> Json:
        return await self._api.call(auth, "GET", _path(name))

    async def list_tuning_jobs(
        self,
        auth: TokenSource,
        parent: str,
        *,
        filter_: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> tuple[list[Json], str]:
        """One page of the location's tuning jobs (those `filter_` admits, if the server
        applies it) and the next page's token ("" on the last page)."""
        params = page_params(page_size, page_token) | ({"filter": filter_} if filter_ else {})
        path = _path(parent, "/tuningJobs")
        answer = await self._api.call(auth, "GET", path, params=params)
        return list(answer.get("tuningJobs", [])), str(answer.get("nextPageToken", ""))

    async def cancel_tuning_job(self, auth: TokenSource, name: str) -> None:
        """POST {name}:cancel: best effort; the job's state says what came of it."""
        await self._api.call(auth, "POST", _path(name, ":cancel"), effect=True, json={})

    async def get_model(self, auth: TokenSource, name: str) -> Json:
        return await self._api.call(auth, "GET", _path(name))

    async def delete_model(self, auth: TokenSource, name: str) -> Json:
        """DELETE a model (refused while it is deployed): the long-running Operation."""
        return await self._api.call(auth, "DELETE", _path(name), effect=True)

    async def get_endpoint(self, auth: TokenSource, name: str) -> Json:
        return await self._api.call(auth, "GET", _path(name))

    async def undeploy_model(self, auth: TokenSource, endpoint: str, deployed_id: str) -> Json:
        """POST {endpoint}:undeployModel for one deployed model: the Operation."""
        body = {"deployedModelId": deployed_id}
        path = _path(endpoint, ":undeployModel")
        return await self._api.call(auth, "POST", path, effect=True, json=body)

    async def delete_endpoint(self, auth: TokenSource, name: str) -> Json:
        """DELETE an endpoint (refused while a model is deployed to it): the Operation."""
        return await self._api.call(auth, "DELETE", _path(name), effect=True)

    async def get_operation(self, auth: TokenSource, name: str) -> Json:
        return await self._api.call(auth, "GET", _path(name))

    async def generate_content(self, auth: TokenSource, endpoint: str, text: str) -> Json:
        """POST {endpoint}:generateContent with one user turn of `text`."""
        body = {"contents": [{"role": "user", "parts": [{"text": text}]}]}
        return await self._api.call(auth, "POST", _path(endpoint, ":generateContent"), json=body)


def _path(name: str, suffix: str = "") -> str:
    return f"/{API_VERSION}/{name}{suffix}"


_IDS = re.compile(r"(projects|locations|tuningJobs|models|endpoints|operations)/[^/:]+")


def _route(path: str) -> str:
    """`/v1/projects/*/locations/*/tuningJobs/*:cancel`: the path without its ids."""
    return _IDS.sub(r"\1/*", path)
