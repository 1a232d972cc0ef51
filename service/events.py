"""ListTuningJobEvents: what happened to a job, oldest first, paged.

The events are written by the saves that make them (core.domain.events, core.redis.job_store)
into the job's stream (`Keys.job_events`), which keeps the newest TUNING_JOB_MAX_EVENTS. The
first, ACCEPTED, is read off the record itself (its `create_time`): the create path writes
nothing for it. A page is one XRANGE after the previous page's last stream id, which is the
page token: it names a place in the caller's own job's stream (the key is the tenant's), so
it needs no signature, and a stream id of the wrong shape is INVALID_ARGUMENT. The ids
survive trimming: a token older than the oldest kept event reads on from the oldest kept.
A page that reaches the end of an unfinished job's stream still carries a token, so a
caller can come back for what happens next; a finished job's last page has none.
"""

from __future__ import annotations

import re
from typing import Any, cast

from core.domain import events as job_events
from core.errors import FieldViolation, InvalidArgument
from core.redis.client import Redis, text, translated_errors
from core.redis.keys import Keys
from service.jobs_api import job_id_of
from service.status import StatusReader
from tuning.v1 import tuning_service_pb2

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
START = "0-0"
"""The token of the place before the first event: the first page begins with ACCEPTED."""
_STREAM_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
_Event = tuning_service_pb2.TuningJobEvent


class EventsApi:
    """ListTuningJobEvents' behaviour, behind the thin servicer."""

    def __init__(self, redis: Redis, keys: Keys, status: StatusReader) -> None:
        self._redis = redis
        self._keys = keys
        self._status = status

    async def list(
        self, tenant: str, request: tuning_service_pb2.ListTuningJobEventsRequest
    ) -> tuning_service_pb2.ListTuningJobEventsResponse:
        """One page of the tenant's job's events; NotFound if it has no such job."""
        job_id = job_id_of(request.name)
        size, after = _page_size(request.page_size), _token(request.page_token)
        job = (await self._status.current(tenant, job_id)).job
        answer = tuning_service_pb2.ListTuningJobEventsResponse()
        if not after:  # the first page: the record's own first event
            answer.events.append(_message(job_events.accepted(job)))
            size -= 1
        start = f"({after}" if after and after != START else "-"
        with translated_errors():
            entries = cast(
                list[Any],
                await self._redis.xrange(
                    self._keys.job_events(tenant, job_id), start, "+", count=size
                ),
            )
        answer.events.extend(_message(job_events.Event.from_json(f[b"e"])) for _, f in entries)
        last = text(entries[-1][0]) if entries else (after or START)
        ended = len(entries) < size and job.state.terminal
        answer.next_page_token = "" if ended else last
        return answer


def _message(event: job_events.Event) -> _Event:
    answer = _Event(
        level=_Event.Level.Value(event.level.value),
        kind=_Event.Kind.Value(event.kind.value),
        message=event.message,
    )
    answer.time.FromNanoseconds(int(event.time_s * 1e9))
    return answer


def _page_size(asked: int) -> int:
    if asked < 0:
        raise InvalidArgument(
            "page_size must not be negative", [FieldViolation("page_size", "must be >= 0")]
        )
    return min(asked or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def _token(token: str) -> str:
    if token and not _STREAM_ID.fullmatch(token):
        raise InvalidArgument(
            "page_token is not one this method gave",
            [FieldViolation("page_token", "a next_page_token of ListTuningJobEvents")],
        )
    return token
