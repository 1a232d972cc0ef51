"""The OAuth 2.0 token endpoint and the bearer-token checks of every API call.

``POST /token`` takes what google-auth's ``Credentials.refresh()`` posts to ``token_uri``
(form-encoded ``grant_type=refresh_token``, ``client_id``, ``client_secret``,
``refresh_token``, optional ``scope``) and answers Google's JSON shapes, including
``invalid_grant`` for an unknown refresh token or a wrong client secret.
"""

from __future__ import annotations

from aiohttp import web

from emulator.errors import SERVICE, ApiError, error_info
from emulator.routes import Route
from emulator.state import EmulatorState, state_of
from emulator.tokens import AccessToken, OAuthError

REALM = 'Bearer realm="https://accounts.google.com/"'
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_SEE = (
    "Expected OAuth 2 access token, login cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
MISSING_MESSAGE = "Request is missing required authentication credential. " + _SEE
INVALID_MESSAGE = "Request had invalid authentication credentials. " + _SEE
SCOPE_MESSAGE = "Request had insufficient authentication scopes."
USER_PROJECT_HEADER = "x-goog-user-project"


async def token_endpoint(request: web.Request) -> web.Response:
    """``POST /token``: exchange a refresh token for a bearer access token."""
    state = state_of(request)
    form = await request.post()
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    try:
        token = state.tokens.exchange(fields, state.clock())
    except OAuthError as exc:
        body = {"error": exc.error, "error_description": exc.description}
        return web.json_response(body, status=exc.http_status, headers=_NO_STORE)
    return web.json_response(token_response(token, state.tokens.token_ttl_s), headers=_NO_STORE)


def token_response(token: AccessToken, token_ttl_s: int) -> dict[str, object]:
    """The success body Google's token endpoint answers."""
    return {
        "access_token": token.value,
        "expires_in": token_ttl_s,
        "scope": " ".join(sorted(token.scopes)),
        "token_type": "Bearer",
    }


def authorize(request: web.Request, route: Route) -> AccessToken:
    """The caller's valid access token carrying one of ``route``'s scopes; 401/403 otherwise.

    Once the token is known to be valid, the request's quota project (``x-goog-user-project``)
    is counted for ``GET /_emulator/stats``, whether or not the scope then suffices.
    """
    state = state_of(request)
    token = authenticate(state, request.headers.get("Authorization", ""), route)
    user_project = request.headers.get(USER_PROJECT_HEADER, "").strip()
    if user_project:
        state.user_projects[user_project] += 1
    if not token.scopes & frozenset(route.scopes):
        raise scope_insufficient(route)
    return token


def authenticate(state: EmulatorState, authorization: str, route: Route) -> AccessToken:
    """The unexpired access token named by an ``Authorization: Bearer`` header; 401 otherwise."""
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip() if scheme.lower() == "bearer" else ""
    token = state.tokens.lookup(value) if value else None
    if token is None:
        raise unauthenticated(route, "CREDENTIALS_MISSING", given=bool(value))
    if state.clock() >= token.expires_s:
        raise unauthenticated(route, "ACCESS_TOKEN_EXPIRED", given=True)
    return token


def unauthenticated(route: Route, reason: str, *, given: bool) -> ApiError:
    """401 UNAUTHENTICATED; an unusable token also gets ``error="invalid_token"`` (RFC 6750)."""
    challenge = REALM + ', error="invalid_token"' if given else REALM
    return ApiError(
        401,
        INVALID_MESSAGE if given else MISSING_MESSAGE,
        details=(error_info(reason, _method_metadata(route)),),
        headers={"WWW-Authenticate": challenge},
    )


def scope_insufficient(route: Route) -> ApiError:
    """403 PERMISSION_DENIED for a token without any of the route's scopes."""
    scopes = " ".join(route.scopes)
    return ApiError(
        403,
        SCOPE_MESSAGE,
        details=(error_info("ACCESS_TOKEN_SCOPE_INSUFFICIENT", _method_metadata(route)),),
        headers={"WWW-Authenticate": f'{REALM}, error="insufficient_scope", scope="{scopes}"'},
    )


def _method_metadata(route: Route) -> dict[str, str]:
    return {"service": SERVICE, "method": route.rpc_method}
