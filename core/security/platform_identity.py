"""The platform's own Google identity: what reads and writes the dataset bucket.

Tenants' credentials act on tenants' projects; the platform's datasets (uploads, and jobs'
copies of them) live in a bucket of the platform's own project, reached with the
platform's identity. In production that is the pod's Kubernetes service account bound to
a Google service account by GKE Workload Identity, found by Application Default
Credentials with no file at all (docs/operations.md says how to set it up). Offline, and
wherever an operator prefers, it is an `authorized_user` file (`TUNING_PLATFORM_CREDENTIALS_FILE`),
refreshed at the operator's token endpoint as tenants' credentials are.
"""

from __future__ import annotations

from pathlib import Path

import google.auth
import google.auth.exceptions
import httpx
from google.auth.credentials import Credentials

from core.errors import CredentialError, InvalidArgument, Reason
from core.security.authorized_user import CLOUD_PLATFORM_SCOPE, AuthorizedUser
from core.security.google_transport import HttpxRequest
from core.security.token_source import OAuthTokenSource

OWNER = "the platform"
REGRANT = (
    "The platform's identity (TUNING_PLATFORM_CREDENTIALS_FILE, or the pod's Workload "
    "Identity) must be able to get a token with the cloud-platform scope."
)


def platform_credentials(credentials_file: str, token_uri: str) -> Credentials:
    """The platform's credential: the `authorized_user` file if one is named, else
    Application Default Credentials with the cloud-platform scope."""
    if not credentials_file:
        return _default_credentials()
    try:
        text = Path(credentials_file).read_text()
    except OSError as exc:
        raise CredentialError(
            f"cannot read the platform's credential {credentials_file}: {type(exc).__name__}",
            reason=Reason.CREDENTIAL_UNREADABLE,
        ) from None
    try:
        user = AuthorizedUser.from_json(text, "TUNING_PLATFORM_CREDENTIALS_FILE")
    except InvalidArgument as exc:
        raise CredentialError(exc.message, reason=Reason.CREDENTIAL_INVALID) from None
    return user.credentials(token_uri)


def platform_token_source(
    credentials_file: str, token_uri: str, http: httpx.Client
) -> OAuthTokenSource:
    """The platform's TokenSource, refreshing over `http` (a blocking client: google-auth
    refreshes on a thread)."""
    credentials = platform_credentials(credentials_file, token_uri)
    return OAuthTokenSource(OWNER, credentials, HttpxRequest(http), regrant=REGRANT)


def _default_credentials() -> Credentials:
    try:
        credentials, _project = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
    except google.auth.exceptions.DefaultCredentialsError as exc:
        raise CredentialError(
            f"the platform has no Google identity: {exc}. " + REGRANT,
            reason=Reason.CREDENTIAL_MISSING,
        ) from None
    return credentials
