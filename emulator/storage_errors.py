"""The Cloud Storage errors the storage routes answer, in the JSON API's envelope.

Each is an :class:`emulator.errors.ApiError` with the JSON API ``reason``; the middleware
answers it as ``{"error": {"code", "message", "errors": [{"message", "domain": "global",
"reason"}]}}`` because the storage routes have ``json_api_errors`` set. Messages follow the
real service's where they are known.

- 400 ``invalid``: a malformed name, parameter, range or body; ``required``: a missing one.
- 400 ``invalid`` (checksum): the body does not match the CRC32C or MD5 the caller gave.
- 404 ``notFound``: no such bucket, object (generation) or upload session.
- 412 ``conditionNotMet``: an ``ifGeneration*`` / ``ifMetageneration*`` precondition failed.
- 413 ``uploadTooLarge``: larger than ``EmulatorConfig.storage_max_object_bytes``.
- 416 ``requestedRangeNotSatisfiable``: a ``Range`` beyond the object's end.
- 429 ``rateLimitExceeded``: too many open resumable upload sessions.
"""

from __future__ import annotations

from emulator.errors import ApiError

_MAX_ECHO_CHARS = 200


def invalid(message: str) -> ApiError:
    """400 ``invalid``."""
    return ApiError(400, message, reason="invalid")


def required(what: str) -> ApiError:
    """400 ``required``: a parameter or field that must be given."""
    return ApiError(400, f"Required parameter missing: {what}.", reason="required")


def invalid_name(kind: str, name: str) -> ApiError:
    """400 for a bucket or object name of the wrong shape (echoed truncated)."""
    return invalid(f"Invalid {kind} name: {name[:_MAX_ECHO_CHARS]!r}.")


def checksum_mismatch(kind: str, given: str, actual: str) -> ApiError:
    """400 for a body whose checksum is not the one the caller sent."""
    return invalid(
        f"Provided {kind} {given[:_MAX_ECHO_CHARS]!r} doesn't match calculated {kind} {actual!r}."
    )


def bucket_not_found(bucket: str) -> ApiError:
    """404 for a bucket that does not exist."""
    return ApiError(404, f"The specified bucket does not exist: {bucket}.", reason="notFound")


def object_not_found(bucket: str, name: str) -> ApiError:
    """404 for an object (or generation of it) that does not exist."""
    return ApiError(404, f"No such object: {bucket}/{name[:_MAX_ECHO_CHARS]}", reason="notFound")


def upload_not_found() -> ApiError:
    """404 for an ``upload_id`` that names no session (unknown, finished long ago, cancelled)."""
    return ApiError(404, "No such upload session.", reason="notFound")


def precondition_failed() -> ApiError:
    """412: a generation or metageneration precondition did not hold."""
    return ApiError(
        412,
        "At least one of the pre-conditions you specified did not hold.",
        reason="conditionNotMet",
    )


def too_large(max_bytes: int) -> ApiError:
    """413: the upload is larger than the emulator accepts."""
    return ApiError(
        413, f"The object exceeds the maximum size of {max_bytes} bytes.", reason="uploadTooLarge"
    )


def range_not_satisfiable(size: int) -> ApiError:
    """416 for a ``Range`` that starts at or beyond the object's end."""
    return ApiError(
        416,
        f"The requested range cannot be satisfied (object size {size}).",
        reason="requestedRangeNotSatisfiable",
        headers={"Content-Range": f"bytes */{size}"},
    )


def too_many_sessions(max_sessions: int) -> ApiError:
    """429 when ``max_sessions`` resumable uploads are already open."""
    return ApiError(
        429,
        f"Too many open resumable upload sessions (at most {max_sessions}).",
        reason="rateLimitExceeded",
    )
