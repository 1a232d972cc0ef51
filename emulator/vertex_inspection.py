"""``GET /_emulator/vertex/tuningJobs``: every tuning job, across projects and clients (no auth).

Nothing like it exists on Vertex. Tests use it to count the upstream jobs a platform job
created (by its label), whoever owns them.
"""

from __future__ import annotations

from aiohttp import web

from emulator.handling import ok
from emulator.state import state_of
from emulator.vertex_render import timestamp


async def list_all_jobs(request: web.Request) -> web.Response:
    """``{"tuningJobs": [{name, project, owner, labels, state, createTime}, ...]}``, oldest first.

    ``project`` is the project as the create named it (id or number); ``state`` is the
    JobState name now.
    """
    state = state_of(request)
    now_s = state.clock()
    jobs = [
        {
            "name": record.name,
            "project": record.project,
            "owner": record.owner,
            "labels": dict(record.spec.labels),
            "state": str(record.view(now_s).state),
            "createTime": timestamp(record.plan.create_s),
        }
        for record in state.vertex.all()
    ]
    return ok({"tuningJobs": jobs})
