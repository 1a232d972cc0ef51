"""The IAM Credentials API's ``generateAccessToken``: short-lived tokens of service accounts.

``POST /v1/projects/-/serviceAccounts/{email}:generateAccessToken`` with
``{"scope": [...], "lifetime": "3600s", "delegates": [...]}`` answers
``{"accessToken": ..., "expireTime": "2026-...Z"}``, as google-auth's impersonated
credentials expect. The caller's token needs the cloud-platform (or iam) scope, and the
caller must hold ``roles/iam.serviceAccountTokenCreator`` on the account: be one of its
``impersonators`` in the grants file (``emulator.config.ServiceAccount``). With
``delegates``, each account of the chain must be allowed to impersonate the next. An
unknown account is 404, a caller without the role 403 PERMISSION_DENIED, in Google's words.

The minted token acts as an OAuth client of its own, the account's email: what it creates
on the emulated Vertex AI and Cloud Storage belongs to the service account.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from aiohttp import web

from emulator import routes
from emulator.config import ServiceAccount
from emulator.errors import TYPE_PREFIX, ApiError, JsonObject, invalid_argument
from emulator.handling import json_body, ok
from emulator.oauth import authorize
from emulator.protojson import timestamp
from emulator.state import state_of

MAX_LIFETIME_S = 3600
"""IAM's ceiling without the organization policy that extends it to 12 hours."""
PERMISSION = "iam.serviceAccounts.getAccessToken"
EMAIL_ECHO_MAX_CHARS = 100
_LIFETIME = re.compile(r"([0-9]{1,10})(?:\.[0-9]{1,9})?s")
_DELEGATE = re.compile(r"projects/-/serviceAccounts/([^/]+)")


async def generate_access_token(request: web.Request) -> web.Response:
    """Mint a token of the path's service account for a caller allowed to impersonate it."""
    token = authorize(request, routes.IAM_GENERATE_ACCESS_TOKEN)
    state = state_of(request)
    body = await json_body(request)
    scopes = _scopes(body)
    lifetime_s = _lifetime_s(body)
    chain = [*_delegates(body), request.match_info["account"]]
    accounts = {account.email: account for account in state.config.service_accounts}
    _check_chain(accounts, token.client_id, chain)
    # Whole seconds: google-auth parses expireTime without fractions.
    expires_s = float(int(state.clock()) + lifetime_s)
    minted = state.tokens.mint(chain[-1], frozenset(scopes), expires_s)
    return ok({"accessToken": minted.value, "expireTime": timestamp(expires_s)})


def _scopes(body: JsonObject) -> list[str]:
    scopes = body.get("scope")
    if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) for s in scopes):
        raise invalid_argument("Scope required.", "scope")
    return scopes


def _lifetime_s(body: JsonObject) -> int:
    raw = body.get("lifetime", f"{MAX_LIFETIME_S}s")
    match = _LIFETIME.fullmatch(raw) if isinstance(raw, str) else None
    if match is None:
        raise invalid_argument(f"Invalid value at 'lifetime': {str(raw)[:40]!r}.", "lifetime")
    seconds = int(match.group(1))
    if not 0 < seconds <= MAX_LIFETIME_S:
        message = f"The lifetime requested must be between 1s and {MAX_LIFETIME_S}s."
        raise invalid_argument(message, "lifetime")
    return seconds


def _delegates(body: JsonObject) -> list[str]:
    """The chain's accounts before the target, from ``projects/-/serviceAccounts/{email}``."""
    raw = body.get("delegates", [])
    if not isinstance(raw, list) or not all(isinstance(d, str) for d in raw):
        raise invalid_argument("Invalid value at 'delegates'.", "delegates")
    emails = []
    for name in raw:
        match = _DELEGATE.fullmatch(name)
        if match is None:
            raise invalid_argument(f"Invalid delegate name: {name[:EMAIL_ECHO_MAX_CHARS]}.")
        emails.append(match.group(1))
    return emails


def _check_chain(accounts: Mapping[str, ServiceAccount], caller: str, chain: list[str]) -> None:
    """404 for an account of the chain that does not exist; 403 for a link whose holder
    may not impersonate the next account."""
    for email in chain:
        account = accounts.get(email)
        if account is None:
            raise ApiError(
                404, f"Not found; Gaia id not found for email {email[:EMAIL_ECHO_MAX_CHARS]}"
            )
        if caller not in account.impersonators:
            raise permission_denied()
        caller = email


def permission_denied() -> ApiError:
    """403 PERMISSION_DENIED, as IAM answers a caller without the Token Creator role."""
    info = {
        "@type": TYPE_PREFIX + "google.rpc.ErrorInfo",
        "reason": "IAM_PERMISSION_DENIED",
        "domain": "iam.googleapis.com",
        "metadata": {"permission": PERMISSION},
    }
    message = f"Permission '{PERMISSION}' denied on resource (or it may not exist)."
    return ApiError(403, message, details=(info,))
