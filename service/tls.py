"""TLS for the API, and mutual TLS where clients present certificates.

`TUNING_TLS_CERT_FILE` and `TUNING_TLS_KEY_FILE` switch the listener to TLS; with
`TUNING_TLS_CLIENT_CA_FILE` as well, every client must present a certificate that CA
signed (the handshake refuses others), and the certificate's subject Common Name can
name the tenant (service.auth). With none of them set the API speaks plaintext, for
a service mesh or a local run.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import grpc

from core.runtime.settings import Settings

COMMON_NAME = "x509_common_name"


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """Credentials for the listener, or None for plaintext. A partial or unreadable
    configuration stops the process: it must never fall back to plaintext."""
    files = tls_files(settings)
    if files is None:
        return None
    cert, key, client_ca = files
    root = _read(client_ca) if client_ca else None
    return grpc.ssl_server_credentials(
        [(_read(key), _read(cert))],
        root_certificates=root,
        require_client_auth=root is not None,
    )


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The same TLS for an HTTP listener (the express facade, service.vertex_express):
    a client certificate required when a client CA is configured; None for plaintext."""
    files = tls_files(settings)
    if files is None:
        return None
    cert, key, client_ca = files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
        if client_ca:
            context.load_verify_locations(cafile=client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise SystemExit(f"configuration error: TLS files: {exc}") from None
    return context


def tls_files(settings: Settings) -> tuple[str, str, str] | None:
    """(certificate, key, client CA or "") as configured, or None for plaintext; a
    certificate without its key, or the reverse, stops the process."""
    cert, key, client_ca = (
        settings.tls_cert_file,
        settings.tls_key_file,
        settings.tls_client_ca_file,
    )
    if not (cert or key or client_ca):
        return None
    if not (cert and key):
        raise SystemExit(
            "configuration error: TLS needs both TUNING_TLS_CERT_FILE and TUNING_TLS_KEY_FILE"
        )
    return cert, key, client_ca


def peer_common_name(context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
    """The subject Common Name of the client's verified certificate, if it presented one."""
    names = list(context.auth_context().get(COMMON_NAME) or ())
    return names[0].decode() if names else None


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise SystemExit(f"configuration error: cannot read {path}: {exc.strerror}") from None
