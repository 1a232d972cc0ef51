"""Checking a credential before it is stored: one refresh at the platform's token endpoint.

The refresh asks for no scopes (as the workers do), so the answer's `scope` lists
everything the tenant granted. google-auth keeps that list (`granted_scopes`) only when
scopes were asked for; the token endpoint's answer is therefore also read from the
transport, which is ours. A credential is accepted only if the grant includes the
generative-language.tuning scope: without it every job would fail upstream with 403.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from dataclasses import dataclass

import google.auth.exceptions
import httpx

from core.errors import FailedPrecondition, Reason, Unavailable
from core.security.authorized_user import (
    TUNING_SCOPE,
    AuthorizedUser,
    refusal_kind,
    regrant_command,
)
from core.security.google_transport import HttpxRequest, HttpxResponse


class _ScopeRecorder:
    """Keeps the `scope` of the last JSON answer the token endpoint gave."""

    def __init__(self) -> None:
        self.scopes: tuple[str, ...] | None = None

    def __call__(self, response: HttpxResponse) -> None:
        try:
            scope = json.loads(response.data).get("scope")
        except (ValueError, AttributeError):
            scope = None
        if isinstance(scope, str):
            self.scopes = tuple(scope.split())


@dataclass(frozen=True)
class Checked:
    """A credential the token endpoint accepted, and the scopes it carries."""

    user: AuthorizedUser
    scopes: tuple[str, ...]


class TokenEndpoint:
    """The OAuth token endpoint the workers refresh tenants' credentials at."""

    def __init__(self, http: httpx.Client, token_uri: str) -> None:
        self._http = http
        self._token_uri = token_uri

    async def check(
        self, tenant: str, user: AuthorizedUser, required_scope: str = TUNING_SCOPE
    ) -> Checked:
        """Refresh `user` once. FailedPrecondition if it is refused or lacks
        `required_scope` (its provider's: core.domain.providers), Unavailable if the
        endpoint cannot be reached.

        The answer carries the refresh token the endpoint may have rotated (RFC 6749
        allows it to issue a new one), so the stored credential is the live one."""
        recorder = _ScopeRecorder()
        request = HttpxRequest(self._http, on_response=recorder)
        credentials = user.credentials(self._token_uri)
        try:
            await asyncio.to_thread(credentials.refresh, request)
        except google.auth.exceptions.RefreshError as exc:
            raise _refused(tenant, refusal_kind(exc)) from None
        except google.auth.exceptions.TransportError:
            raise Unavailable(
                "the OAuth token endpoint cannot be reached to check the credential; retry",
                retry_after_s=5.0,
                reason=Reason.TOKEN_ENDPOINT_UNAVAILABLE,
            ) from None
        granted = tuple(credentials.granted_scopes or recorder.scopes or ())
        if required_scope not in granted:
            raise _scope_missing(tenant, required_scope)
        refresh_token = credentials.refresh_token or user.refresh_token
        return Checked(
            dataclasses.replace(user, refresh_token=refresh_token), tuple(sorted(granted))
        )


def _refused(tenant: str, kind: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"the token endpoint refused the credential for tenant {tenant!r} ({kind}): it was "
        "revoked, expired, or is not valid for its OAuth client. Grant it again "
        f"({regrant_command()}) and set the new one.",
        reason=Reason.CREDENTIAL_REFUSED,
    )


def _scope_missing(tenant: str, scope: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"the credential for tenant {tenant!r} was granted without the scope {scope} that "
        f"tuning on its provider requires. Grant it again with that scope "
        f"({regrant_command()}) and set the new one.",
        reason=Reason.SCOPE_MISSING,
    )
