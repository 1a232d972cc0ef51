"""Slots of Vertex AI projects: how many tuning jobs each project runs at once.

Vertex AI limits the tuning jobs a project runs concurrently (a new project may run one),
and a job past the limit sits upstream in WAITING_FOR_QUOTA. The platform keeps that line
itself, shared by every tenant whose jobs run in the project: a job takes one of the
project's `limit_of(project)` slots before it is created upstream and gives it back when
it ends (worker.steps). A job that finds no free slot waits QUEUED in the project's line,
first come first served: its place is kept from its first ask, and a freed slot goes to
the head of the line, not to whoever asks next. A job that may run in several projects
(a tenant's quota pools, core.domain.providers) stands in each one's line and takes the
first slot that frees; it then leaves the other lines.

Per project, two keys share its hash tag (core.redis.keys): the set of holders and the
line, both of `tenant/job_id` members. A limit of 0 means none: nothing is stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.redis.client import Redis, text, translated_errors
from core.redis.keys import Keys
from core.redis.scripts import Scripts, give_back_call, take_slot_call


@dataclass(frozen=True)
class Placement:
    """What asking for a slot gave: the slot, or the 1-based place in the project's line."""

    granted: bool
    position: int = 0


GRANTED = Placement(granted=True)


class ProjectSlots:
    """The slots of every Vertex AI project; `limit_of(project)` is its number (0: no
    limit), read at every ask so that a changed tenants file applies at once."""

    def __init__(self, redis: Redis, keys: Keys, limit_of: Callable[[str], int]) -> None:
        self._redis = redis
        self._keys = keys
        self._limit_of = limit_of
        self._scripts = Scripts(redis)

    def limit(self, project: str) -> int:
        """How many jobs `project` may run at once (0: no limit)."""
        return self._limit_of(project)

    async def take(self, project: str, member: str) -> Placement:
        """A slot of `project` for `member` (kept if it has one already), or its place in
        the line, which it joins if it was not in it."""
        limit = self._limit_of(project)
        if limit <= 0:
            return GRANTED
        call = take_slot_call(
            running_key=self._keys.project_running(project),
            waiting_key=self._keys.project_waiting(project),
            member=member,
            limit=limit,
        )
        granted, position = await self._scripts.run(call)
        return GRANTED if int(granted) else Placement(granted=False, position=int(position))

    async def give_back(self, project: str, member: str) -> list[str]:
        """Free `member`'s slot of `project` and its place in the line (idempotent); the
        waiters the free slots now admit, to be woken."""
        limit = self._limit_of(project)
        if limit <= 0:
            return []
        call = give_back_call(
            running_key=self._keys.project_running(project),
            waiting_key=self._keys.project_waiting(project),
            member=member,
            limit=limit,
        )
        return [text(raw) for raw in await self._scripts.run(call)]

    async def position(self, project: str, member: str) -> int:
        """1-based place of `member` in `project`'s line; 0 if it is not waiting there."""
        with translated_errors():
            rank: Any = await self._redis.zrank(self._keys.project_waiting(project), member)
        return 0 if rank is None else int(rank) + 1

    async def counts(self, project: str) -> tuple[int, int]:
        """How many jobs hold a slot of `project`, and how many wait in its line."""
        with translated_errors():
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.scard(self._keys.project_running(project))
                pipe.zcard(self._keys.project_waiting(project))
                holding, waiting = await pipe.execute()
        return int(holding), int(waiting)

    async def holders(self, project: str) -> list[str]:
        """The members holding a slot of `project`."""
        with translated_errors():
            raw: Any = await self._redis.smembers(self._keys.project_running(project))
        return sorted(text(m) for m in raw)

    async def waiters(self, project: str) -> list[str]:
        """The members in `project`'s line, first first."""
        with translated_errors():
            raw: Any = await self._redis.zrange(self._keys.project_waiting(project), 0, -1)
        return [text(m) for m in raw]
