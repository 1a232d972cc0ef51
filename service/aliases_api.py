"""The AliasService's behaviour: bounds, what an alias may point at, paging.

Every bound is checked before anything is read, each violation naming its field: a name
is `aliases/{alias_id}`, the id 1-63 of [a-z0-9-], a letter first and no `-` last
(AIP-122); a target has the name rules of GenerateContent's `model` (its parser is
reused, service.generation); a canary target differs from the target and comes with a
`canary_percent` of 1-99 (and 0 without one); revisions are not negative.

Then the targets, at every create, move and rollback: each must be a job of the caller's
(another tenant's is NOT_FOUND, with exactly the words for one that does not exist),
SUCCEEDED (FAILED_PRECONDITION naming its state otherwise), and a checkpoint one the job
lists. A job deleted after its alias pointed at it is not noticed here: calls through
the alias then answer NOT_FOUND (docs/architecture.md, decision 26).

An alias's answer carries the earliest retire time of its targets' base models, and
whether that is within the warning window (`retirement`; core.domain.catalogue), read
from the target jobs on every answer (the flag moves with the clock).
"""

from __future__ import annotations

from core.domain.catalogue import Catalogue, Retirement, earliest
from core.domain.job import JOB_NAME_PREFIX, Job
from core.domain.states import JobState
from core.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound, echo
from core.redis.aliases import (
    ALIAS_ID,
    ALIAS_NAME_PREFIX,
    CANARY_PERCENTS,
    MAX_REVISIONS_KEPT,
    Alias,
    AliasRevision,
    AliasStore,
    Route,
    alias_not_found,
)
from core.redis.job_store import JobStore
from core.runtime.clock import Clock
from service.generation import ModelName, parse_model
from service.listing import PageTokens, page_size_of
from service.validation import MAX_NAME_CHARS
from tuning.v1 import alias_service_pb2 as pb

MAX_PAGE_SIZE = 100
"""Most aliases (or revisions) in one List page."""
ALIASES_LISTING = "\x00aliases"
"""What ListAliases' page tokens are signed for in place of a filter (no other listing's
token is good for it); ListAliasRevisions' add the alias id."""


class AliasesApi:
    """Aliases of the calling tenant over `aliases`; `jobs` to check their targets."""

    def __init__(
        self,
        aliases: AliasStore,
        jobs: JobStore,
        page_tokens: PageTokens,
        *,
        catalogue: Catalogue,
        clock: Clock,
    ) -> None:
        self._aliases = aliases
        self._jobs = jobs
        self._page_tokens = page_tokens
        self._catalogue = catalogue
        self._clock = clock

    async def retirement(self, tenant: str, alias: Alias) -> Retirement | None:
        """The earliest retirement of the base models of the alias's targets (read from
        their jobs, one read each), retiring if any is: a canary's retiring model stops
        its share of the calls as surely. A target deleted since adds nothing."""
        now = self._clock()
        found = []
        for target in filter(None, (alias.route.target, alias.route.canary_target)):
            name, _ = parse_model(target)
            job = None if name is None else await self._jobs.get(tenant, name.job_id)
            if job is not None and not job.deleted:
                found.append(self._catalogue.retirement(job.base_model, now))
        return earliest(found)

    async def create(self, tenant: str, principal: str, request: pb.CreateAliasRequest) -> Alias:
        """A new alias of `tenant`'s, made by `principal`."""
        id_violations = [] if ALIAS_ID.fullmatch(request.alias_id) else [_bad_id("alias_id")]
        route = _checked_route(request.alias, id_violations)
        await self._check_targets(tenant, route)
        return await self._aliases.create(tenant, request.alias_id, route, principal=principal)

    async def get(self, tenant: str, name: str) -> Alias:
        return await self._current(tenant, alias_id_of(name, "name"))

    async def list_aliases(
        self, tenant: str, *, page_size: int, page_token: str
    ) -> tuple[list[Alias], str]:
        """One page of the tenant's aliases, newest first, and the token of the next."""
        size = page_size_of(page_size, max_size=MAX_PAGE_SIZE)
        cursor = await self._page_tokens.decode(page_token, tenant, ALIASES_LISTING)
        batch = await self._aliases.page(tenant, before_seq=cursor, count=size + 1)
        page = batch[:size]
        aliases = [alias for _, alias in page if alias is not None]
        if len(batch) <= size:
            return aliases, ""
        return aliases, await self._page_tokens.encode(tenant, ALIASES_LISTING, page[-1][0])

    async def update(self, tenant: str, principal: str, request: pb.UpdateAliasRequest) -> Alias:
        """Move the alias to the request's route."""
        violations = _name_violations(request.alias.name, "alias.name")
        violations += _revision_violations("expected_revision", request.expected_revision)
        route = _checked_route(request.alias, violations)
        alias_id = request.alias.name.removeprefix(ALIAS_NAME_PREFIX)
        await self._check_targets(tenant, route)
        return await self._aliases.move(
            tenant,
            alias_id,
            route,
            principal=principal,
            expected_revision=request.expected_revision,
        )

    async def rollback(
        self, tenant: str, principal: str, request: pb.RollbackAliasRequest
    ) -> Alias:
        """Point the alias at an earlier revision's route again (0: the previous one). With
        revision 0 and no expected revision, the current revision read is expected, so a
        move in between is ABORTED rather than rolled back by mistake."""
        violations = _name_violations(request.name, "name")
        violations += _revision_violations("revision", request.revision)
        violations += _revision_violations("expected_revision", request.expected_revision)
        _refuse(violations, "RollbackAlias")
        current = await self._current(tenant, request.name.removeprefix(ALIAS_NAME_PREFIX))
        earlier = await self._earlier(tenant, current, request.revision)
        await self._check_targets(tenant, earlier.route)
        pinned = request.expected_revision or (current.revision if not request.revision else 0)
        return await self._aliases.rollback(
            tenant,
            current.alias_id,
            to_revision=earlier.revision,
            principal=principal,
            expected_revision=pinned,
        )

    async def delete(self, tenant: str, name: str) -> None:
        await self._aliases.delete(tenant, alias_id_of(name, "name"))

    async def revisions(
        self, tenant: str, name: str, *, page_size: int, page_token: str
    ) -> tuple[list[AliasRevision], str]:
        """One page of the alias's kept revisions, newest first, and the next page's token."""
        alias_id = alias_id_of(name, "name")
        size = page_size_of(page_size, max_size=MAX_PAGE_SIZE)
        listing = f"{ALIASES_LISTING}/{alias_id}/revisions"
        cursor = await self._page_tokens.decode(page_token, tenant, listing)
        await self._current(tenant, alias_id)
        batch = await self._aliases.revisions(
            tenant, alias_id, before_revision=cursor, count=size + 1
        )
        page = batch[:size]
        if len(batch) <= size:
            return page, ""
        return page, await self._page_tokens.encode(tenant, listing, page[-1].revision)

    async def _current(self, tenant: str, alias_id: str) -> Alias:
        found = await self._aliases.get(tenant, alias_id)
        if found is None:
            raise alias_not_found(alias_id)
        return found

    async def _earlier(self, tenant: str, current: Alias, revision: int) -> AliasRevision:
        """The kept revision to roll `current` back to (0: the newest before it)."""
        if not revision:
            older = await self._aliases.revisions(
                tenant, current.alias_id, before_revision=current.revision, count=1
            )
            if not older:
                raise FailedPrecondition(f"{current.name} has no earlier revision to roll back to")
            return older[0]
        if revision >= current.revision:
            why = f"must be older than the current revision, {current.revision}"
            raise InvalidArgument(f"invalid revision: {why}", [FieldViolation("revision", why)])
        found = await self._aliases.revision(tenant, current.alias_id, revision)
        if found is None:
            kept = f"the newest {MAX_REVISIONS_KEPT} are kept"
            raise NotFound(f"revision {revision} of {current.name} not found ({kept})")
        return found

    async def _check_targets(self, tenant: str, route: Route) -> None:
        for target in filter(None, (route.target, route.canary_target)):
            name, _ = parse_model(target)
            assert name is not None  # checked with the request's bounds
            await self._check_target(tenant, target, name)

    async def _check_target(self, tenant: str, target: str, name: ModelName) -> None:
        job = await self._jobs.get(tenant, name.job_id)
        if job is None:  # another tenant's job too: the same answer (as GenerateContent's)
            raise NotFound(f"{JOB_NAME_PREFIX}{name.job_id} not found")
        if job.state is not JobState.SUCCEEDED:
            raise FailedPrecondition(
                f"{job.name} is {job.state.value}: an alias can point at a SUCCEEDED job only"
            )
        if name.checkpoint_id and not _lists(job, name.checkpoint_id):
            listed = ", ".join(c.checkpoint_id for c in job.checkpoints) or "none"
            raise NotFound(f"{echo(target)} not found: {job.name} has checkpoints {listed}")


def _lists(job: Job, checkpoint_id: str) -> bool:
    return any(c.checkpoint_id == checkpoint_id for c in job.checkpoints)


def alias_id_of(name: str, field: str) -> str:
    """The id in `aliases/{alias_id}`; InvalidArgument naming `field` for any other shape.
    (GenerateContent takes the same names: service.generation can call this.)"""
    _refuse(_name_violations(name, field), "alias name")
    return name.removeprefix(ALIAS_NAME_PREFIX)


def _name_violations(name: str, field: str) -> list[FieldViolation]:
    alias_id = name.removeprefix(ALIAS_NAME_PREFIX)
    valid = len(name) <= MAX_NAME_CHARS and name.startswith(ALIAS_NAME_PREFIX)
    if valid and ALIAS_ID.fullmatch(alias_id):
        return []
    return [_bad_id(field, f"must be {ALIAS_NAME_PREFIX}{{alias_id}}: ")]


def _bad_id(field: str, shape: str = "") -> FieldViolation:
    rule = "1-63 of [a-z0-9-], starting with a letter, not ending with -"
    return FieldViolation(field, f"{shape}{rule}")


def _revision_violations(field: str, value: int) -> list[FieldViolation]:
    return [FieldViolation(field, "must not be negative")] if value < 0 else []


def _checked_route(alias: pb.Alias, violations: list[FieldViolation]) -> Route:
    """The alias's route; InvalidArgument naming every bad field (with `violations`)."""
    violations = violations + _route_violations(alias)
    _refuse(violations, "alias")
    return Route(alias.target, alias.canary_target, alias.canary_percent)


def _route_violations(alias: pb.Alias) -> list[FieldViolation]:
    found = _target_violations("alias.target", alias.target)
    least, most = CANARY_PERCENTS
    if alias.canary_target:
        found += _target_violations("alias.canary_target", alias.canary_target)
        if alias.canary_target == alias.target:
            found.append(FieldViolation("alias.canary_target", "must differ from target"))
        if not least <= alias.canary_percent <= most:
            why = f"must be from {least} to {most} with a canary_target"
            found.append(FieldViolation("alias.canary_percent", why))
    elif alias.canary_percent:
        found.append(FieldViolation("alias.canary_percent", "must be 0 without a canary_target"))
    return found


def _target_violations(field: str, target: str) -> list[FieldViolation]:
    if not target:
        return [FieldViolation(field, "required: tuningJobs/{id}, or a checkpoint of one")]
    name, violations = parse_model(target)
    return [] if name is not None else [FieldViolation(field, v.description) for v in violations]


def _refuse(violations: list[FieldViolation], what: str) -> None:
    if violations:
        first = violations[0]
        more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
        raise InvalidArgument(
            f"invalid {what}: {first.field}: {first.description}{more}", violations
        )
