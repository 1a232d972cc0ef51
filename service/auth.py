"""Caller authentication and roles.

A caller is a principal of the tenants file, named by `authorization: Bearer <token>`
metadata or, under mutual TLS, by its client certificate's subject Common Name (then a
bearer token, if also sent, must name the same principal). Each protected service needs
a role: `tuning.v1.TuningService` a tenant, `tuning.v1.CredentialService` an admin; an
unknown or missing identity is UNAUTHENTICATED, the wrong role PERMISSION_DENIED.

With a refusal brake (service.refusal_brake), a known principal's call waits out its
brake's debt once admitted, and a refused one (no principal yet) waits out the shared
unauthenticated debt before it is answered.

`Authenticator.wrap` wraps every method once, at registration (service.wrapping), so
the check runs in the handler's own task, where the RPC's context (metadata, the peer's
certificate) is at hand and the tenants file's latest version is consulted; the tenant
travels to the handler in a context variable. It runs before the request is parsed
(service.message_limits parses inside it): a caller who is no one costs no parsing.

Every method of every kind (unary or streaming, either way) is protected, except those
on `OPEN_METHODS`, written once: health and reflection stay open, as probes and tools
expect. A method added later is protected without anyone having to remember it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc

from core.errors import PermissionDenied, Reason, Unauthenticated, echo
from core.runtime import logs
from core.security.tenants import Role, Tenant, TenantDirectory
from service.refusal_brake import RefusalBrake
from service.tls import peer_common_name
from service.wrapping import preceded

_tenant: ContextVar[str] = ContextVar("tenant")
_caller: ContextVar[Tenant | None] = ContextVar("caller", default=None)
if TYPE_CHECKING:
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
    Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

OPEN_METHODS = ("/grpc.health.v1.Health/", "/grpc.reflection.")
"""Prefixes of the full method names served without authentication; every other method
needs a known principal (and its service's role)."""
API_KEY_METADATA = "x-goog-api-key"
"""Where Google's clients send an API key; here it carries the platform token."""
SERVICE_ROLES: Mapping[str, Role] = {
    "tuning.v1.TuningService": Role.TENANT,
    # The Gemini API facade (service.gemini_facade): a tenant's own models and jobs.
    "google.ai.generativelanguage.v1beta.ModelService": Role.TENANT,
    "google.ai.generativelanguage.v1beta.GenerativeService": Role.TENANT,
    "google.longrunning.Operations": Role.TENANT,
    "tuning.v1.GenerationService": Role.TENANT,
    "tuning.v1.AliasService": Role.TENANT,
    "tuning.v1.CredentialService": Role.ADMIN,
}
"""The role each protected service needs; a service not listed needs admin."""
ROLE_REQUIRED: Mapping[Role, Reason] = {
    Role.TENANT: Reason.TENANT_ROLE_REQUIRED,
    Role.ADMIN: Reason.ADMIN_ROLE_REQUIRED,
}
"""The reason a caller without the role a service needs is refused with."""


def current_tenant() -> str:
    """The authenticated principal of the RPC being handled."""
    return _tenant.get()


def principal_if_any() -> str:
    """The RPC's principal, or "" in a method open to all (OPEN_METHODS)."""
    return _tenant.get("")


def caller_if_any() -> Tenant | None:
    """Who the RPC's caller proved to be, even if its role was then refused (for the
    audit trail: service.audit); None if it proved no one."""
    return _caller.get()


def authenticate(directory: TenantDirectory, token: str | None, common_name: str | None) -> Tenant:
    """The principal named by a bearer token and/or a verified certificate's Common Name."""
    by_token = directory.authenticate(token) if token else None
    if token and by_token is None:
        raise _token_invalid()
    if common_name is None:
        if by_token is None:
            raise _token_invalid()
        return by_token
    by_cert = directory.get(common_name)
    if by_cert is None:
        raise Unauthenticated(
            f"the client certificate's Common Name {echo(common_name)} names no tenant",
            reason=Reason.CERTIFICATE_UNKNOWN,
        )
    if by_token is not None and by_token.id != by_cert.id:
        raise PermissionDenied(
            "the bearer token and the client certificate name different principals",
            reason=Reason.PRINCIPAL_MISMATCH,
        )
    return by_cert


def authorize(principal: Tenant, required: Role) -> None:
    """PermissionDenied unless `principal` has the `required` role."""
    if principal.role != required:
        raise PermissionDenied(
            f"this service needs the {required.value} role; the caller has "
            f"the {principal.role.value} role",
            reason=ROLE_REQUIRED[required],
        )


def bearer_token(metadata: Iterable[tuple[str, Any]] | None) -> str | None:
    """The caller's platform token: an `authorization: Bearer <token>` entry, or an
    `x-goog-api-key: <token>` one, the API key Google's clients send (so code written
    for Google's Gemini API needs only its key changed: service.gemini_facade). A bearer
    entry wins when both are sent."""
    api_key = None
    for key, value in metadata or ():
        if not isinstance(value, str):
            continue
        if key == "authorization":
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif key == API_KEY_METADATA and value.strip():
            api_key = value.strip()
    return api_key


def _token_invalid() -> Unauthenticated:
    return Unauthenticated(
        "missing or unknown bearer token: send 'authorization: Bearer <tenant token>' "
        "(or the token as the API key, 'x-goog-api-key')",
        reason=Reason.TOKEN_INVALID,
    )


class Authenticator:
    """Admits each RPC to a protected service only for a known principal with its role.

    `mutual_tls`: the server asks for client certificates, so a certificate's Common Name
    can name the caller; without it, no certificate is looked for.
    """

    def __init__(
        self,
        directory: TenantDirectory,
        roles: Mapping[str, Role] = SERVICE_ROLES,
        *,
        mutual_tls: bool = False,
        brake: RefusalBrake | None = None,
    ) -> None:
        self._directory = directory
        self._roles = roles
        self._mutual_tls = mutual_tls
        self._brake = brake

    def wrap(self, method: str, handler: Handler) -> Handler:
        if method.startswith(OPEN_METHODS):
            return handler
        service = method[1:].partition("/")[0]
        required = self._roles.get(service, Role.ADMIN)
        directory, mutual_tls = self._directory, self._mutual_tls

        def admit(request: Any, context: Context) -> Any:
            token = bearer_token(context.invocation_metadata())
            common_name = peer_common_name(context) if mutual_tls else None
            principal = authenticate(directory, token, common_name)
            _caller.set(principal)
            authorize(principal, required)
            # Each RPC runs in a task of its own, whose context ends with it: nothing to reset.
            _tenant.set(principal.id)
            logs.tenant.set(principal.id)
            return request

        brake = self._brake
        if brake is None:
            return preceded(handler, admit)
        return preceded(
            handler,
            admit,
            hold=lambda: brake.turn(_tenant.get()),
            slow_refusal=lambda _: brake.unauthenticated(),
        )
