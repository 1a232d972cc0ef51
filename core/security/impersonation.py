"""Service-account impersonation: a tenant's Google identity with no secret stored at all.

A tenant's entry in the tenants file may name a service account of the tenant's own
(`impersonate_service_account`) instead of a credentials file. The platform's own identity
(core.security.platform_identity: Workload Identity on GKE) then asks the IAM Credentials
API for a short-lived token of that account (`generateAccessToken`: an hour at most, scope
cloud-platform, chosen here), which IAM grants only if the tenant gave the platform's
service account `roles/iam.serviceAccountTokenCreator` on its own. Nothing long-lived of
the tenant's is held anywhere: revoking that role ends the platform's access within the
hour, and there is no refresh token to leak.

IAM's refusal is translated where it is met, in `ImpersonatedServiceAccount.refresh`: a
403 (the role is missing) or a 404 (no such account) is a CredentialError naming the
account and the role; a 429 or 5xx is the token endpoint being unavailable (retried
later, as google-auth's TransportError is by `OAuthTokenSource`). A refusal is not
remembered: the grant is changed on Google's side, where the platform cannot see it, so
each job asks once and fails at once while it is still refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import google.auth.exceptions
import google.auth.transport
from google.auth import impersonated_credentials
from google.auth.credentials import Credentials

from core.errors import CredentialError, Reason
from core.security import platform_identity
from core.security.authorized_user import CLOUD_PLATFORM_SCOPE, refusal_kind

IMPERSONATION_ROLE = "roles/iam.serviceAccountTokenCreator"
TOKEN_LIFETIME_S = 3600
"""What IAM grants without an organization policy extending it (at most 12 hours then)."""
SERVICE_ACCOUNT_MAX_CHARS = 100
# A user-managed service account: a 6-30 character account id at a 6-30 character project id.
SERVICE_ACCOUNT = re.compile(
    r"[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z][a-z0-9-]{4,28}[a-z0-9]\.iam\.gserviceaccount\.com"
)


def service_account(raw: object) -> str:
    """`raw` if it is a service account's email (bounded, checked); ValueError otherwise."""
    if not isinstance(raw, str) or len(raw) > SERVICE_ACCOUNT_MAX_CHARS:
        raise ValueError(
            f"a service account must be an email of at most {SERVICE_ACCOUNT_MAX_CHARS} characters"
        )
    if not SERVICE_ACCOUNT.fullmatch(raw):
        raise ValueError(
            f"{raw[:SERVICE_ACCOUNT_MAX_CHARS]!r} is not a service account email "
            "(NAME@PROJECT.iam.gserviceaccount.com)"
        )
    return raw


def generate_access_token_url(base_url: str, account: str) -> str:
    """The IAM Credentials API's `generateAccessToken` of `account` at `base_url`."""
    return f"{base_url.rstrip('/')}/v1/projects/-/serviceAccounts/{account}:generateAccessToken"


class ImpersonatedServiceAccount(impersonated_credentials.Credentials):
    """google-auth's impersonated credentials, whose refusals say what to do about them."""

    def refresh(self, request: google.auth.transport.Request) -> None:
        try:
            super().refresh(request)  # type: ignore[no-untyped-call]
        except google.auth.exceptions.RefreshError as exc:
            raise self._translated(exc) from None

    def _translated(self, exc: google.auth.exceptions.RefreshError) -> Exception:
        account = str(self.service_account_email)
        code = _iam_status(exc)
        if code is None:  # The source credential, not IAM: the platform's own was refused.
            return _platform_refused(account, refusal_kind(exc))
        if code == 401:  # IAM did not take the platform's own token.
            return _platform_refused(account, "IAM answered 401")
        if code == 429 or code >= 500:
            message = f"IAM Credentials API answered {code}"
            return google.auth.exceptions.TransportError(message)  # type: ignore[no-untyped-call]
        return impersonation_refused(account, code)


def impersonation_refused(account: str, code: int) -> CredentialError:
    """The CredentialError of IAM's `code` (403, 404, another 4xx) for `account`."""
    if code == 404:
        why = f"service account {account} does not exist (IAM answered 404)"
    else:
        why = f"IAM refused the platform a token of service account {account} ({code})"
    return CredentialError(
        f"{why}: the platform's service account must hold {IMPERSONATION_ROLE} on {account}, "
        "granted by the tenant (docs/operations.md, service-account impersonation)",
        reason=Reason.IMPERSONATION_REFUSED,
    )


def _platform_refused(account: str, kind: str) -> CredentialError:
    return CredentialError(
        f"the platform's own credential was refused ({kind}) while impersonating "
        f"{account}. " + platform_identity.REGRANT,
        reason=Reason.CREDENTIAL_REFUSED,
    )


def _iam_status(exc: google.auth.exceptions.RefreshError) -> int | None:
    """The HTTP code of an IAM error answer (google-auth keeps its body, a JSON text, as the
    second argument); None for an error of the source credential's own refresh."""
    body = exc.args[1] if len(exc.args) > 1 else None
    if not isinstance(body, str):
        return None
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return 0  # IAM answered, but not in its error shape.
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, int) else 0


class Impersonator:
    """Credentials of tenants' service accounts, minted with the platform's identity.

    The platform's credential is built at the first impersonation, so a worker without
    one (no file, no Application Default Credentials) runs fine until a tenant needs it.
    """

    def __init__(self, platform: Callable[[], Credentials], iam_base_url: str) -> None:
        self._platform = platform
        self._source: Credentials | None = None
        self._iam_base_url = iam_base_url

    @classmethod
    def from_settings(
        cls, platform_credentials_file: str, token_uri: str, iam_base_url: str
    ) -> Impersonator:
        """One over `platform_credentials(platform_credentials_file, token_uri)`."""

        def platform() -> Credentials:
            return platform_identity.platform_credentials(platform_credentials_file, token_uri)

        return cls(platform, iam_base_url)

    def credentials(self, account: str) -> ImpersonatedServiceAccount:
        """Credentials of `account` (CredentialError if the platform has no identity)."""
        if self._source is None:
            self._source = self._platform()
        return ImpersonatedServiceAccount(  # type: ignore[no-untyped-call]
            source_credentials=self._source,
            target_principal=account,
            target_scopes=[CLOUD_PLATFORM_SCOPE],
            lifetime=TOKEN_LIFETIME_S,
            iam_endpoint_override=generate_access_token_url(self._iam_base_url, account),
        )
