"""The audit trail: every state-changing call, recorded once, by the wrappers around it.

Which calls, and what each record says, is one table, `AUDITED`: for each state-changing
method's full name, its action verb, how to find the resource it acted on (in the request,
or in the answer for what a call makes: a create's job, an upload's dataset), what changed
(`detail`, never a secret), and, for the CredentialService, the tenant an admin acts on.
A method not in the table is not recorded; reads never are.

Two wrappers per audited method (service.process `rpc_wrappers`), so that no API function
records anything itself:

- `AuditTrail.noting`, innermost, next to the servicer: it sees the parsed request and the
  answer, and notes them for the call;
- `AuditTrail.recording`, just outside authentication: it sees every call, refused or not,
  and once the call has ended records it with its status code, the principal
  authentication found (service.auth `caller_if_any`, the refused ones too) and the request
  id (service.observability, outside it).

A record is one JSON line on the `tuning.audit` logger, and one entry in Redis
(core.redis.audit) that admins read through the AuditService (service.audit_listing).
A caller who is no one (UNAUTHENTICATED, or a token and certificate naming different
principals) gets the log line only: an anonymous flood must not fill Redis. Refused calls
of known principals are stored, with their outcome: who tried what matters; each stream's
cap bounds what a tenant can store. `validate_only` calls change nothing: not recorded.

The write never slows or fails the call: the record is made after the answer is decided,
queued, and stored by one writer task the trail keeps, in batches (all that queued while
the last batch was written, one pipeline each: a round trip and a task per record cost
more than the create they record), at most MAX_PENDING_WRITES waiting, each batch within
WRITE_TIMEOUT_S; a Redis failure, a full queue or a timeout logs a warning and drops the
stored copies, the log lines having been written. `aclose` waits for the writes in flight
(the API's shutdown, after its drain). So a record is listable a moment after its call's
answer, not at the same instant.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
from redis import exceptions as redis_errors

from core.errors import TuningError
from core.redis.aliases import AliasStore
from core.redis.audit import AuditEntry, AuditStore
from core.runtime import logs
from core.runtime.clock import Clock
from core.security.tenants import Role, TenantDirectory
from service.auth import caller_if_any
from service.errors import status_code
from service.wrapping import behavior_of, rewrapped

if TYPE_CHECKING:
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
    Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

log = logging.getLogger(__name__)
audit_log = logging.getLogger("tuning.audit")
"""One INFO line per record, its fields under `audit` (core.runtime.logs)."""

MAX_PENDING_WRITES = 1000
"""Records being stored at once; past it a record is logged only (Redis is too slow)."""
WRITE_TIMEOUT_S = 2.0
"""Longest a batch's write to Redis may take before it is dropped."""
WRITE_LINGER_S = 0.005
"""How long the writer waits for more records before it writes a batch."""
MAX_FIELD_CHARS = 256
"""Longest resource, tenant or detail recorded (a refused call's name may be anything)."""

Found = Callable[[Any, Any], str]
"""(the request, or None if it was never read; the answer, or None) -> a field's text."""


def _nothing(request: Any, answer: Any) -> str:
    return ""


def _never(request: Any) -> bool:
    return False


@dataclass(frozen=True)
class Audited:
    """How one method is recorded."""

    action: str
    resource: Found
    detail: Found = _nothing
    acts_on: Callable[[Any], str] | None = None
    """For an admin's call: the tenant it acts on, from the request."""
    changes_nothing: Callable[[Any], bool] = _never
    """Whether the request asked for nothing to change (`validate_only`)."""
    alias_move: bool = False
    """The detail names the alias's revision before (read after the call)."""


def _answer_name(request: Any, answer: Any) -> str:
    return str(getattr(answer, "name", ""))


def _request_name(request: Any, answer: Any) -> str:
    return str(getattr(request, "name", ""))


def _validate_only(request: Any) -> bool:
    return bool(getattr(request, "validate_only", False))


def _retuned_from(request: Any, answer: Any) -> str:
    return f"from {request.name}" if request is not None else ""


def _alias_created(request: Any, answer: Any) -> str:
    return _answer_name(request, answer) or (
        f"aliases/{request.alias_id}" if request is not None and request.alias_id else ""
    )


def _alias_moved(request: Any, answer: Any) -> str:
    return str(request.alias.name) if request is not None else ""


def _route_of(alias: Any) -> str:
    """An alias's targets in a few words."""
    route = str(alias.target)
    if alias.canary_target:
        route += f" (canary {alias.canary_target} at {alias.canary_percent}%)"
    return route


def _alias_to(request: Any, answer: Any) -> str:
    return f"to {_route_of(answer)}" if answer is not None else ""


def _credential_of(request: Any, answer: Any) -> str:
    return f"tenants/{request.tenant}/credential" if request is not None else ""


def _tenant_in(request: Any) -> str:
    return str(request.tenant)


def _resealed(request: Any, answer: Any) -> str:
    if answer is None:
        return ""
    failed = f", {len(answer.failed_tenants)} failed" if answer.failed_tenants else ""
    return f"{answer.resealed_count} resealed under key {answer.key_id}{failed}"


def _tuned_model_created(request: Any, answer: Any) -> str:
    made = _answer_name(request, answer).removesuffix("/operations/create")
    if made or request is None or not request.tuned_model_id:
        return made
    return f"tunedModels/{request.tuned_model_id}"


def _tuned_model_updated(request: Any, answer: Any) -> str:
    return str(request.tuned_model.name) if request is not None else ""


def _update_mask(request: Any, answer: Any) -> str:
    paths = list(request.update_mask.paths) if request is not None else []
    return f"fields {', '.join(paths)}" if paths else ""


TUNING = "/tuning.v1.TuningService/"
ALIASES = "/tuning.v1.AliasService/"
CREDENTIALS = "/tuning.v1.CredentialService/"
MODELS = "/google.ai.generativelanguage.v1beta.ModelService/"
OPERATIONS = "/google.longrunning.Operations/"

AUDITED: Mapping[str, Audited] = {
    TUNING + "CreateTuningJob": Audited("create_job", _answer_name, changes_nothing=_validate_only),
    TUNING + "RetuneTuningJob": Audited(
        "retune_job", _answer_name, _retuned_from, changes_nothing=_validate_only
    ),
    TUNING + "CancelTuningJob": Audited("cancel_job", _request_name),
    TUNING + "DeleteTuningJob": Audited("delete_job", _request_name),
    TUNING + "UploadDataset": Audited("upload_dataset", _answer_name),
    TUNING + "DeleteDataset": Audited("delete_dataset", _request_name),
    ALIASES + "CreateAlias": Audited("create_alias", _alias_created, _alias_to),
    ALIASES + "UpdateAlias": Audited("move_alias", _alias_moved, _alias_to, alias_move=True),
    ALIASES + "RollbackAlias": Audited("rollback_alias", _request_name, _alias_to, alias_move=True),
    ALIASES + "DeleteAlias": Audited("delete_alias", _request_name),
    CREDENTIALS + "SetTenantCredential": Audited(
        "set_credential", _credential_of, acts_on=_tenant_in
    ),
    CREDENTIALS + "DeleteTenantCredential": Audited(
        "delete_credential", _credential_of, acts_on=_tenant_in
    ),
    CREDENTIALS + "ResealCredentials": Audited("reseal_credentials", _nothing, _resealed),
    MODELS + "CreateTunedModel": Audited("create_tuned_model", _tuned_model_created),
    MODELS + "UpdateTunedModel": Audited("update_tuned_model", _tuned_model_updated, _update_mask),
    MODELS + "DeleteTunedModel": Audited("delete_tuned_model", _request_name),
    OPERATIONS + "CancelOperation": Audited("cancel_operation", _request_name),
}
"""Every state-changing method, by full name, and how it is recorded."""


@dataclass
class _Note:
    """What the inner wrapper saw of one call, for the outer one."""

    request: Any = None
    answer: Any = None
    read: bool = False
    """Whether the call got as far as its behavior (its request was parsed)."""


_note: ContextVar[_Note | None] = ContextVar("audit_note", default=None)


@dataclass(frozen=True)
class Call:
    """One state-changing call as it ended, whatever served it (gRPC or the express
    facade: service.vertex_express.server)."""

    method: str
    action: str
    principal: str
    role: str
    tenant: str
    resource: str
    outcome: str
    detail: str = ""
    request_id: str = field(default_factory=logs.request_id.get)


class AuditTrail:
    """Records state-changing calls: a log line each, and an entry in `store` (if any)
    for every call whose principal is known.

    `tenants` decides whose stream a record goes in: the tenant it acted on if that is
    a principal of the tenants file, else the caller's own (an admin's reseal, an admin
    naming an unknown tenant). `aliases` reads an alias's previous revision for a move's
    detail.
    """

    def __init__(
        self,
        store: AuditStore | None,
        tenants: TenantDirectory,
        clock: Clock,
        *,
        aliases: AliasStore | None = None,
        max_pending: int = MAX_PENDING_WRITES,
    ) -> None:
        self._store = store
        self._tenants = tenants
        self._clock = clock
        self._aliases = aliases
        self._max_pending = max_pending
        self._queued: list[tuple[str, AuditEntry]] = []
        self._writer: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        """The alias moves' reads of their previous revision, before they are queued."""

    def noting(self, method: str, handler: Handler) -> Handler:
        """The innermost wrapper: notes an audited call's parsed request and its answer."""
        if method not in AUDITED or handler.response_streaming:
            return handler
        behavior = behavior_of(handler)

        async def noted(request: Any, context: Context) -> Any:
            note = _note.get()
            if note is not None:
                note.request, note.read = request, True
            answer = await behavior(request, context)
            if note is not None:
                note.answer = answer
            return answer

        return rewrapped(handler, noted)

    def recording(self, method: str, handler: Handler) -> Handler:
        """The wrapper outside authentication: records an audited call once it ended."""
        audited = AUDITED.get(method)
        if audited is None or handler.response_streaming:
            return handler
        behavior = behavior_of(handler)

        async def recorded(request: Any, context: Context) -> Any:
            note = _Note()
            reset = _note.set(note)
            raised: BaseException | None = None
            try:
                return await behavior(request, context)
            except BaseException as exc:
                raised = exc
                raise
            finally:
                _note.reset(reset)
                self._ended(method, audited, note, _outcome(context.code(), raised))

        return rewrapped(handler, recorded)

    def _ended(self, method: str, audited: Audited, note: _Note, outcome: str) -> None:
        if note.read and audited.changes_nothing(note.request):
            return
        caller = caller_if_any()
        role = caller.role.value if caller is not None else ""
        tenant = caller.id if caller is not None and caller.role == Role.TENANT else ""
        if caller is not None and audited.acts_on is not None and note.read:
            tenant = audited.acts_on(note.request)
        call = Call(
            method=method,
            action=audited.action,
            principal=caller.id if caller is not None else "",
            role=role,
            tenant=tenant,
            resource=audited.resource(note.request, note.answer),
            outcome=outcome,
            detail=audited.detail(note.request, note.answer),
        )
        moved = audited.alias_move and outcome == "OK" and note.answer is not None
        self.record(call, moved_alias=note.answer if moved else None)

    def record(self, call: Call, *, moved_alias: Any = None) -> None:
        """Record `call`: the log line, and (for a known principal) the stored entry.

        The one way a record is made. `moved_alias`: the Alias a move or rollback
        answered, whose previous revision the detail names (read with the write, and
        the line logged then)."""
        entry = _entry(call, int(self._clock() * 1000))
        store = self._store if entry.principal else None
        if store is not None and len(self._queued) + len(self._pending) >= self._max_pending:
            log.warning("audit record of %s not stored: too many writes pending", entry.action)
            store = None
        if store is None:
            _log(entry)
            return
        if moved_alias is None:
            _log(entry)
            self._queue(entry)
            return
        task = asyncio.get_running_loop().create_task(self._after_move(entry, moved_alias))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _after_move(self, entry: AuditEntry, moved_alias: Any) -> None:
        entry = await self._with_previous(entry, moved_alias)
        _log(entry)
        self._queue(entry)

    def _queue(self, entry: AuditEntry) -> None:
        """Queue `entry` for the writer, starting it if it is not running."""
        self._queued.append((self._stream_of(entry), entry))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        """Store what is queued, a batch per round trip, until nothing is: the records of
        the calls that ended while one batch was written go in the next. One task and one
        pipeline for many records, where a task and a round trip each cost more than the
        create they record (bench.rpc create)."""
        assert self._store is not None
        while self._queued:
            await asyncio.sleep(WRITE_LINGER_S)  # let the calls ending now join the batch
            batch, self._queued = self._queued, []
            try:
                async with asyncio.timeout(WRITE_TIMEOUT_S):
                    await self._store.append_many(batch)
            except (TuningError, redis_errors.RedisError, TimeoutError) as exc:
                log.warning("%d audit records not stored: %s", len(batch), type(exc).__name__)

    async def _with_previous(self, entry: AuditEntry, alias: Any) -> AuditEntry:
        """`entry` whose detail also says where the alias pointed before the move (as it
        was, if that revision cannot be read)."""
        if self._aliases is None or alias.revision <= 1:
            return entry
        alias_id = str(alias.name).removeprefix("aliases/")
        try:
            async with asyncio.timeout(WRITE_TIMEOUT_S):
                before = await self._aliases.revision(entry.tenant, alias_id, alias.revision - 1)
        except (TuningError, redis_errors.RedisError, TimeoutError):
            return entry
        if before is None:  # no longer kept
            return entry
        route = before.route
        was = route.target
        if route.canary_target:
            was += f" (canary {route.canary_target} at {route.canary_percent}%)"
        return replace(entry, detail=_bounded(f"from {was} {entry.detail}"))

    def _stream_of(self, entry: AuditEntry) -> str:
        known = entry.tenant and self._tenants.get(entry.tenant) is not None
        return entry.tenant if known else entry.principal

    async def aclose(self) -> None:
        """Wait for the records being stored."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        if self._writer is not None:
            await self._writer


def _outcome(code: Any, raised: BaseException | None) -> str:
    """The call's status code's name, as its caller sees it."""
    found = status_code(code) if isinstance(code, grpc.StatusCode | int) else None
    if found is not None:
        return found.name
    if isinstance(raised, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED.name
    return grpc.StatusCode.UNKNOWN.name if raised is not None else grpc.StatusCode.OK.name


def _entry(call: Call, time_ms: int) -> AuditEntry:
    return AuditEntry(
        time_ms=time_ms,
        principal=call.principal,
        role=call.role,
        tenant=_bounded(call.tenant),
        method=call.method,
        action=call.action,
        resource=_bounded(call.resource),
        outcome=call.outcome,
        request_id=call.request_id,
        detail=_bounded(call.detail),
    )


def _bounded(text: str) -> str:
    return text if len(text) <= MAX_FIELD_CHARS else text[: MAX_FIELD_CHARS - 1] + "…"


def _log(entry: AuditEntry) -> None:
    fields = entry.fields()
    fields["time"] = iso_time(entry.time_ms)
    audit_log.info(
        "audit %s %s %s",
        entry.action,
        entry.resource or "-",
        entry.outcome,
        extra={"audit": fields},
    )


def iso_time(time_ms: int) -> str:
    """`time_ms` (since the epoch) as RFC 3339 in UTC, to the millisecond."""
    seconds, ms = divmod(time_ms, 1000)
    return f"{_iso_second(seconds)}.{ms:03d}Z"


@functools.lru_cache(maxsize=4)
def _iso_second(seconds: int) -> str:
    """A second's RFC 3339 text: every audited call logs one, mostly of the same second."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
