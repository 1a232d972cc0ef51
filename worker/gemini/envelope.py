"""The google.rpc error envelope's translation, as the Gemini client first had it here.

It is shared with the Vertex AI and Cloud Storage clients now, and lives in
worker.upstream_http; these names stay importable from here for the code that used them.
"""

from __future__ import annotations

from worker.upstream_http import ERROR_INFO, RETRY_INFO, error_from_response, parse_duration_s

__all__ = ["ERROR_INFO", "RETRY_INFO", "error_from_response", "parse_duration_s"]
