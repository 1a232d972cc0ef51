"""What each route does, over the platform's own behaviour.

Jobs are created, cancelled and listed by service.jobs_api.JobsApi, read through the
status cache (service.status.StatusReader), and their tuned models called through
service.generation.GenerationApi: the same validation, quotas, tenancy and limits as
the gRPC API's, and nothing of them written again here. This module only turns Vertex
AI's JSON into tuning.v1's messages and back (service.vertex_express.jobs_json,
generate_json).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Mapping

from core.errors import FieldViolation, InvalidArgument
from service.convert import job_to_proto
from service.create_preparation import read_head
from service.generation import GenerationApi
from service.jobs_api import JobsApi
from service.status import StatusReader
from service.vertex_express.generate_json import generate_request, response_json
from service.vertex_express.jobs_json import (
    Json,
    TuningJob,
    create_request,
    job_json,
    vertex_violations,
)
from service.vertex_express.names import Target

MAX_PAGE_SIZE_CHARS = 10
"""A `pageSize` longer than this is refused unread (the platform caps the value)."""


class ExpressFacade:
    """The Vertex AI express-mode routes of one tenant's call each."""

    def __init__(self, jobs: JobsApi, status: StatusReader, generation: GenerationApi) -> None:
        self._jobs = jobs
        self._status = status
        self._generation = generation

    async def create(self, tenant: str, body: object) -> Json:
        """`POST tuningJobs`: the job, as created (QUEUED)."""
        request = create_request(body)
        try:
            job, position = await self._jobs.create(tenant, read_head(request.SerializeToString()))
        except InvalidArgument as exc:
            raise vertex_violations(exc) from None
        return job_json(tenant, job_to_proto(job, position))

    async def get(self, tenant: str, target: Target) -> Json:
        """`GET tuningJobs/{id}`: the job as the status cache has it."""
        answer = await self._status.answer(tenant, target.job_name)
        return job_json(tenant, TuningJob.FromString(answer))

    async def cancel(self, tenant: str, target: Target) -> Json:
        """`POST tuningJobs/{id}:cancel`. Vertex AI answers an empty object; so does this."""
        await self._jobs.cancel(tenant, target.job_name)
        return {}

    async def list(self, tenant: str, query: Mapping[str, str]) -> Json:
        """`GET tuningJobs?pageSize&pageToken&filter`: a page, newest first; `filter` is
        the platform's (ListTuningJobs': `state = RUNNING`, `labels.k = "v"`)."""
        jobs, token = await self._jobs.list(
            tenant,
            page_size=_page_size(query.get("pageSize", "")),
            page_token=query.get("pageToken", ""),
            filter_text=query.get("filter", ""),
        )
        body: Json = {"tuningJobs": [job_json(tenant, job_to_proto(j)) for j in jobs]}
        if token:
            body["nextPageToken"] = token
        return body

    async def generate(self, tenant: str, target: Target, body: object) -> Json:
        """`POST endpoints/{id}:generateContent`: the tuned model's answer."""
        request = generate_request(body, target.model)
        return response_json(await self._generation.generate(tenant, request))

    async def stream(self, tenant: str, target: Target, body: object) -> AsyncGenerator[Json]:
        """`POST endpoints/{id}:streamGenerateContent`: the answer's chunks as they come."""
        request = generate_request(body, target.model)
        async with contextlib.aclosing(self._generation.stream(tenant, request)) as chunks:
            async for chunk in chunks:
                yield response_json(chunk)


def _page_size(text: str) -> int:
    """`pageSize` as a number (0: the default); the platform bounds its value."""
    if not text:
        return 0
    if len(text) > MAX_PAGE_SIZE_CHARS or not text.lstrip("-").isdigit():
        raise InvalidArgument(
            "pageSize must be an integer", [FieldViolation("pageSize", "must be an integer")]
        )
    return int(text)
