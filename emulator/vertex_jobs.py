"""Handlers of ``/{v1,v1beta1}/projects/{p}/locations/{l}/tuningJobs``: create, get, list, cancel.

Create answers the TuningJob itself, synchronously, in JOB_STATE_PENDING, with a server
assigned 19-digit id (there is no caller-chosen id and no idempotency key: a caller puts a
run id in ``labels`` and reconciles with ``list``). Cancel is best effort: CANCELLING, then
CANCELLED, unless the job finishes first; cancelling a finished job is 400
FAILED_PRECONDITION and changes nothing.
"""

from __future__ import annotations

from aiohttp import web

from emulator import paging, routes, vertex_render
from emulator.errors import JsonObject, failed_precondition
from emulator.handling import ok, raw_json_body, wants_int_enums
from emulator.middleware import forced_endpoint_failure, forced_stop
from emulator.oauth import authorize
from emulator.state import EmulatorState, state_of
from emulator.vertex_access import owned_job, placement
from emulator.vertex_create import Forced, Placement, new_record
from emulator.vertex_filter import JobFacts, parse_filter
from emulator.vertex_spec import parse_tuning_job
from emulator.vertex_store import TuningJobRecord
from emulator.vertex_training import TERMINAL


async def create(request: web.Request) -> web.Response:
    """``POST …/tuningJobs``: validate the TuningJob, keep it, answer it PENDING."""
    token = authorize(request, routes.TUNING_JOBS_CREATE)
    state = state_of(request)
    where = placement(request, state, token)
    now_s = state.clock()
    raw = await raw_json_body(request)
    spec = parse_tuning_job(raw, where.api_version, state.config.vertex_models, now_s)
    forced = Forced(forced_stop(), forced_endpoint_failure())
    record = new_record(
        state.vertex,
        state.objects,
        state.config,
        spec=spec,
        where=where,
        now_s=now_s,
        forced=forced,
    )
    state.vertex.add(record)
    return _answer(request, record, now_s)


async def get(request: web.Request) -> web.Response:
    """``GET …/tuningJobs/{id}``: the TuningJob as it stands now."""
    token = authorize(request, routes.TUNING_JOBS_GET)
    state = state_of(request)
    record = owned_job(request, state, token, "aiplatform.tuningJobs.get")
    return _answer(request, record, state.clock())


async def list_jobs(request: web.Request) -> web.Response:
    """``GET …/tuningJobs?filter&pageSize&pageToken``: the caller's jobs there, oldest first."""
    token = authorize(request, routes.TUNING_JOBS_LIST)
    state = state_of(request)
    where = placement(request, state, token)
    config = state.config
    wanted = paging.page_request(request.query, config.page_size_default, config.page_size_max)
    matches = parse_filter(request.query.get("filter", ""))
    now_s = state.clock()
    jobs = [
        r
        for r in _jobs_at(state, where)
        if matches(JobFacts(r.spec.labels, str(r.view(now_s).state)))
    ]
    chosen, next_token = paging.page(jobs, lambda record: record.seq, wanted)
    body: JsonObject = {}
    if chosen:
        version, int_enums = where.api_version, wants_int_enums(request)
        body["tuningJobs"] = [
            vertex_render.tuning_job(r, now_s, version, int_enums=int_enums) for r in chosen
        ]
    if next_token:
        body["nextPageToken"] = next_token
    return ok(body)


async def cancel(request: web.Request) -> web.Response:
    """``POST …/tuningJobs/{id}:cancel`` with ``{}``: answers ``{}``; 400 if already finished."""
    token = authorize(request, routes.TUNING_JOBS_CANCEL)
    state = state_of(request)
    record = owned_job(request, state, token, "aiplatform.tuningJobs.cancel")
    await raw_json_body(request)
    now_s = state.clock()
    seen = record.view(now_s)
    if seen.state in TERMINAL:
        raise failed_precondition(
            f"Cannot cancel tuning job {record.name}: it is already in state {seen.state}."
        )
    if record.cancel_s is None:
        record.cancel_s = now_s
    return ok({})


def _jobs_at(state: EmulatorState, where: Placement) -> list[TuningJobRecord]:
    """The caller's jobs in the path's project (by number) and location, oldest first."""
    return [
        record
        for record in state.vertex.all()
        if record.owner == where.owner
        and record.project_number == where.project_number
        and record.location == where.location
    ]


def _answer(request: web.Request, record: TuningJobRecord, now_s: float) -> web.Response:
    version = request.match_info["version"]
    return ok(vertex_render.tuning_job(record, now_s, version, int_enums=wants_int_enums(request)))
