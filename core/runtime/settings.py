"""Settings: one frozen object per process, built once from the environment in `main()`.

Every field names its environment variable, default and unit; docs/operations.md's
configuration table is generated from this module (`python -m core.runtime.settings`) and a
test checks that the two agree.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.domain.catalogue import Catalogue
from core.domain.events import DEFAULT_MAX_EVENTS
from core.domain.polling import PollPolicy
from core.domain.quotas import (
    DEFAULT_BUDGET_WARNING_FRACTION,
    DEFAULT_GENERATE_MAX_CONCURRENT,
    DEFAULT_GENERATE_REQUESTS_PER_MINUTE,
    DEFAULT_GENERATE_TOKENS_PER_MINUTE,
    DEFAULT_MAX_DATASETS,
    DEFAULT_MAX_STORED_BYTES,
    DEFAULT_VALIDATE_BURST,
    DEFAULT_VALIDATES_PER_MINUTE,
    TenantQuotas,
)

DEFAULT_BASE_MODELS = ("models/gemini-1.5-flash-001-tuning", "models/gemini-1.0-pro-001")
DEFAULT_VERTEX_BASE_MODELS = (
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
    "gemini-3-flash-preview",
    "gemini-3.1-flash-lite",
    "gemini-3.5-flash",
    "gemini-3.5-flash-lite",
)
DEFAULT_BASE_MODEL_RETIREMENTS = (
    "gemini-2.5-pro=2027-06-17",
    "gemini-2.5-flash=2027-06-17",
    "gemini-2.5-flash-lite=2027-07-22",
)
"""Vertex AI's 2.5 family (see `base_model_retirements`); the Gemini API's models, whose
retirements are past (models/gemini-1.5-flash-001-tuning=2025-05-24,
models/gemini-1.0-pro-001=2025-02-15), are left out so that they stay tunable."""

DEFAULT_FACADE_BASE_MODELS = (
    "models/gemini-1.5-flash-001-tuning=gemini-2.5-flash",
    "models/gemini-1.0-pro-001=gemini-2.5-flash",
)
"""The old surface's two tunable models, each onto Vertex AI's closest current one."""


def setting(env: str, default: Any, doc: str) -> Any:
    """Declare a settings field read from the environment variable `env`."""
    return dataclasses.field(default=default, metadata={"env": env, "doc": doc})


@dataclass(frozen=True)
class Settings:
    """Configuration of the API, the worker and the demo."""

    log_level: str = setting(
        "TUNING_LOG_LEVEL", "INFO", "API and worker: log level (DEBUG, INFO, WARNING, ERROR)."
    )
    redis_url: str = setting(
        "TUNING_REDIS_URL", "redis://127.0.0.1:6379/0", "Redis holding jobs, queue and cache."
    )
    redis_cluster: bool = setting(
        "TUNING_REDIS_CLUSTER", False, "Talk to `TUNING_REDIS_URL` as a Redis Cluster."
    )
    status_cache_entries: int = setting(
        "TUNING_STATUS_CACHE_ENTRIES",
        10_000,
        "API: jobs whose status each replica keeps in memory, kept current by Redis client "
        "tracking (0: read Redis on every GetTuningJob).",
    )
    status_cache_max_bytes: int = setting(
        "TUNING_STATUS_CACHE_MAX_BYTES",
        64 * 1024 * 1024,
        "API: bytes (keys and values, estimated) the status cache of each replica may hold; "
        "the oldest entries leave to fit.",
    )
    status_cache_max_stale_s: float = setting(
        "TUNING_STATUS_CACHE_MAX_STALE_S",
        1.0,
        "API: the most a cached status may lag Redis if invalidations stop arriving; "
        "past it reads go to Redis.",
    )
    redis_key_prefix: str = setting(
        "TUNING_REDIS_KEY_PREFIX", "tj", "Prefix of every Redis key (lets deployments share one)."
    )
    grpc_listen: str = setting("TUNING_GRPC_LISTEN", "[::]:50051", "API: gRPC listen address.")
    express_listen: str = setting(
        "TUNING_EXPRESS_LISTEN",
        "",
        "API: HTTP listen address of the Vertex AI express-mode facade (`/v1beta1/tuningJobs`, "
        "service.vertex_express) that google-genai's `vertexai=True, api_key=...` client "
        "speaks (empty: not served; port 0: any free port).",
    )
    metrics_listen: str = setting(
        "TUNING_METRICS_LISTEN",
        "0.0.0.0:9090",
        "API and worker: Prometheus /metrics HTTP listen address (empty: none).",
    )
    otlp_endpoint: str = setting(
        "TUNING_OTLP_ENDPOINT",
        "",
        "API and worker: OpenTelemetry collector to export traces to over OTLP/gRPC, e.g. "
        "`http://otel-collector:4317` (empty: tracing off, at no cost; docs/operations.md).",
    )
    worker_health_listen: str = setting(
        "TUNING_WORKER_HEALTH_LISTEN",
        "[::]:8081",
        "Worker: gRPC health (grpc.health.v1) listen address for its probes.",
    )
    grpc_keepalive_s: float = setting(
        "TUNING_GRPC_KEEPALIVE_S", 30.0, "API: HTTP/2 keepalive ping interval to clients."
    )
    grpc_max_connection_age_s: float = setting(
        "TUNING_GRPC_MAX_CONNECTION_AGE_S",
        300.0,
        "API: connections are closed gracefully after this long, so load spreads "
        "across replicas behind a ClusterIP Service.",
    )
    grpc_grace_s: float = setting(
        "TUNING_GRPC_GRACE_S", 10.0, "API: seconds in-flight RPCs get to finish on SIGTERM."
    )
    grpc_max_message_bytes: int = setting(
        "TUNING_GRPC_MAX_MESSAGE_BYTES",
        16 * 1024 * 1024,
        "API: largest response, and largest request: a CreateTuningJob's (other methods "
        "have smaller limits, below).",
    )
    grpc_small_request_max_bytes: int = setting(
        "TUNING_GRPC_SMALL_REQUEST_MAX_BYTES",
        64 * 1024,
        "API: largest request, in bytes, of every method but CreateTuningJob and "
        "UploadDataset; checked after authentication, before the request is parsed "
        "(INVALID_ARGUMENT, REQUEST_TOO_LARGE).",
    )
    upload_max_chunk_bytes: int = setting(
        "TUNING_UPLOAD_MAX_CHUNK_BYTES",
        1024 * 1024,
        "API: largest `chunk` of one UploadDataset message, in bytes; a message may be "
        "`TUNING_GRPC_SMALL_REQUEST_MAX_BYTES` larger, for its other fields.",
    )
    tenants_file: str = setting(
        "TUNING_TENANTS_FILE",
        "/etc/tuning/tenants.json",
        "JSON file of tenants: token digests and OAuth credential files (docs/operations.md).",
    )
    tls_cert_file: str = setting(
        "TUNING_TLS_CERT_FILE",
        "",
        "API: PEM server certificate chain for TLS (empty: plaintext gRPC).",
    )
    tls_key_file: str = setting(
        "TUNING_TLS_KEY_FILE", "", "API: PEM private key of `TUNING_TLS_CERT_FILE`."
    )
    tls_client_ca_file: str = setting(
        "TUNING_TLS_CLIENT_CA_FILE",
        "",
        "API: PEM CA certificates for mutual TLS; set, clients must present a certificate "
        "it signed, whose Common Name may name the tenant.",
    )
    encryption_keys_file: str = setting(
        "TUNING_ENCRYPTION_KEYS_FILE",
        "",
        "JSON file of AES-256-GCM keys sealing tenants' credentials in Redis; the first "
        "encrypts (empty: SetTenantCredential is refused).",
    )
    credential_recheck_s: float = setting(
        "TUNING_CREDENTIAL_RECHECK_S",
        5.0,
        "Worker: how often, per tenant, it looks for a changed credential in Redis.",
    )
    base_models: tuple[str, ...] = setting(
        "TUNING_BASE_MODELS",
        DEFAULT_BASE_MODELS,
        "Comma-separated base models that Gemini API tenants may tune.",
    )
    vertex_base_models: tuple[str, ...] = setting(
        "TUNING_VERTEX_BASE_MODELS",
        DEFAULT_VERTEX_BASE_MODELS,
        "Comma-separated base models that Vertex AI tenants may tune, as bare ids "
        "(`gemini-2.5-flash`); `TUNING_BASE_MODELS` are the Gemini API's.",
    )
    base_model_retirements: tuple[str, ...] = setting(
        "TUNING_BASE_MODEL_RETIREMENTS",
        DEFAULT_BASE_MODEL_RETIREMENTS,
        "Comma-separated `model=YYYY-MM-DD` (00:00 UTC): the day each base model, of either "
        "provider, retires (core.domain.catalogue); a model not named has no known date. "
        "The defaults are this project's assumption from Google's published schedule "
        "(Gemini 2.5 models retire from late 2026 into 2027): check them against Google's "
        "model versions page. The Gemini API's models have none by default: that API no "
        "longer tunes, and a date past would refuse every job on them.",
    )
    generate_timeout_s: float = setting(
        "TUNING_GENERATE_TIMEOUT_S",
        600.0,
        "API: longest wait for a GenerateContent answer's bytes (between two chunks of a "
        "stream) when the caller sets no shorter deadline; a caller's deadline always "
        "bounds the whole call.",
    )
    facade_base_models: tuple[str, ...] = setting(
        "TUNING_FACADE_BASE_MODELS",
        DEFAULT_FACADE_BASE_MODELS,
        "Comma-separated `old=new`: how the Gemini API facade (service.gemini_facade) maps a "
        "base model name of the Gemini API's tuning surface onto a base model of a tenant "
        "whose provider is Vertex AI; a name not listed there is refused, naming the "
        "accepted ones. Tenants on the Gemini API provider take the names as they are.",
    )
    retirement_warning_days: float = setting(
        "TUNING_RETIREMENT_WARNING_DAYS",
        90.0,
        "Days before its base model's retirement that a job or alias is flagged "
        "`base_model_retiring` (and ListTuningJobs' `base_model_retiring = true` selects it).",
    )
    min_examples: int = setting(
        "TUNING_MIN_EXAMPLES", 20, "Fewest training examples a job may have (tuning guide: 20)."
    )
    max_examples: int = setting(
        "TUNING_MAX_EXAMPLES",
        1_000_000,
        "Most training examples a job or a dataset may have (Vertex AI's cap: 1M).",
    )
    max_input_chars: int = setting(
        "TUNING_MAX_INPUT_CHARS", 40_000, "Longest `text_input` of one example, in characters."
    )
    max_output_chars: int = setting(
        "TUNING_MAX_OUTPUT_CHARS", 5_000, "Longest `output` of one example, in characters."
    )
    max_reported_violations: int = setting(
        "TUNING_MAX_REPORTED_VIOLATIONS",
        100,
        "API: field violations (and, apart, dataset warnings) listed in one error; the rest "
        "are summed up in a last entry.",
    )
    max_filter_chars: int = setting(
        "TUNING_MAX_FILTER_CHARS",
        2048,
        "API: longest ListTuningJobs `filter`, in characters (checked before it is parsed).",
    )
    dataset_max_bytes: int = setting(
        "TUNING_DATASET_MAX_BYTES",
        4 * 1024 * 1024,
        "Largest CSV or JSON dataset UploadDataset accepts, in bytes (these are parsed "
        "whole; AI Studio's cap is 4 MB), and the largest dataset a Gemini API tenant's "
        "job may use (its examples go inline in the create request).",
    )
    dataset_stream_max_bytes: int = setting(
        "TUNING_DATASET_STREAM_MAX_BYTES",
        1024 * 1024 * 1024,
        "Largest JSONL dataset UploadDataset accepts, in bytes; JSONL is checked line by "
        "line as it streams to `TUNING_DATASET_STORAGE` (Vertex AI's cap is 1 GB).",
    )
    dataset_storage: str = setting(
        "TUNING_DATASET_STORAGE",
        "",
        "API and worker: `gs://bucket/prefix` where uploaded datasets, and jobs' copies of "
        "them, are kept (read and written with `TUNING_PLATFORM_CREDENTIALS_FILE`'s "
        "identity); empty: UploadDataset is refused FAILED_PRECONDITION.",
    )
    platform_credentials_file: str = setting(
        "TUNING_PLATFORM_CREDENTIALS_FILE",
        "",
        "API and worker: the platform's own Google identity, an `authorized_user` JSON "
        "file; empty: Application Default Credentials (GKE Workload Identity).",
    )
    iam_credentials_base_url: str = setting(
        "TUNING_IAM_CREDENTIALS_BASE_URL",
        "https://iamcredentials.googleapis.com",
        "Worker: IAM Credentials API base URL, where the platform's identity gets "
        "short-lived tokens of tenants' service accounts (`impersonate_service_account`; "
        "the emulator's URL offline).",
    )
    tenant_receive_bytes_per_s: int = setting(
        "TUNING_TENANT_RECEIVE_BYTES_PER_S",
        16 * 1024 * 1024,
        "API: request bytes per second one tenant may send one replica (its gRPC calls "
        "and express-facade bodies together), with a burst of twice "
        "`TUNING_GRPC_MAX_MESSAGE_BYTES`; past it a unary call or a facade request is "
        "refused RESOURCE_EXHAUSTED (RECEIVE_RATE_EXCEEDED) before its request is read, "
        "and an upload is slowed to the rate (0: no limit).",
    )
    tenant_refusals_per_s: float = setting(
        "TUNING_TENANT_REFUSALS_PER_S",
        10.0,
        "API: refused calls per second one principal may make on one replica, with a "
        "burst of `TUNING_TENANT_REFUSAL_BURST`; past it its next calls wait, up to 2 s "
        "each, before their request is read (calls refused by authentication share one "
        "such budget, and wait before their answer). Nothing is refused for it "
        "(service/refusal_brake.py; 0: no brake).",
    )
    tenant_refusal_burst: int = setting(
        "TUNING_TENANT_REFUSAL_BURST",
        50,
        "API: refused calls one principal may make at once before "
        "`TUNING_TENANT_REFUSALS_PER_S` slows it.",
    )
    tenant_max_uploads: int = setting(
        "TUNING_TENANT_MAX_UPLOADS",
        2,
        "API: UploadDataset streams one tenant may have open at once on one replica; more "
        "are refused RESOURCE_EXHAUSTED (TOO_MANY_UPLOADS) before their body is read.",
    )
    tenant_max_watches: int = setting(
        "TUNING_TENANT_MAX_WATCHES",
        1_000,
        "API: WatchTuningJob streams one tenant may have open at once on one replica; more "
        "are refused RESOURCE_EXHAUSTED (TOO_MANY_WATCHES).",
    )
    max_watches: int = setting(
        "TUNING_MAX_WATCHES",
        20_000,
        "API: WatchTuningJob streams one replica serves at once, all tenants together (an "
        "idle one costs a few kB and nothing per second but its heartbeat).",
    )
    stall_after_s: float = setting(
        "TUNING_STALL_AFTER_S",
        1800.0,
        "Worker: a RUNNING job whose progress has not moved for this long is marked stalled "
        "(`stalled_since`, a STALLED event, the `tuning_jobs_stalled` gauge) until it moves.",
    )
    job_max_events: int = setting(
        "TUNING_JOB_MAX_EVENTS",
        DEFAULT_MAX_EVENTS,
        "API and worker: events kept per job (ListTuningJobEvents); the oldest go first.",
    )
    audit_retention_s: float = setting(
        "TUNING_AUDIT_RETENTION_S",
        90 * 24 * 3600.0,
        "API: seconds an audit record (AuditService) is kept in Redis; older ones are "
        "trimmed and never listed (the JSON log lines are for longer keeping).",
    )
    audit_max_records: int = setting(
        "TUNING_AUDIT_MAX_RECORDS",
        100_000,
        "API: audit records kept per tenant (or admin) in Redis, whatever their age; the "
        "oldest go first.",
    )
    watch_heartbeat_s: float = setting(
        "TUNING_WATCH_HEARTBEAT_S",
        15.0,
        "API: how often an idle WatchTuningJob stream sends a heartbeat (which keeps it "
        "alive through load balancers' idle timeouts); every fourth also re-reads its job, "
        "whatever the status cache heard.",
    )
    watch_poll_s: float = setting(
        "TUNING_WATCH_POLL_S",
        1.0,
        "API: with the status cache off (`TUNING_STATUS_CACHE_ENTRIES=0`, so no change "
        "notices from Redis), how often a WatchTuningJob stream re-reads its job.",
    )
    max_uploads: int = setting(
        "TUNING_MAX_UPLOADS",
        8,
        "API: UploadDataset streams one replica serves at once, all tenants together. Each "
        "holds at most about 30 MB (a streamed JSONL's blocks in flight and one 8 MiB chunk "
        "being written; a CSV or JSON dataset, `TUNING_DATASET_MAX_BYTES` and its parse), "
        "so this bounds what uploads hold: 8 fit the API pod's 512 MiB.",
    )
    upload_idle_timeout_s: float = setting(
        "TUNING_UPLOAD_IDLE_TIMEOUT_S",
        10.0,
        "API: longest wait, in seconds, for the next message of an UploadDataset stream; "
        "past it the upload ends DEADLINE_EXCEEDED (UPLOAD_TIMED_OUT) and frees its slot.",
    )
    upload_max_s: float = setting(
        "TUNING_UPLOAD_MAX_S",
        120.0,
        "API: longest, in seconds, an UploadDataset stream may take to send its whole "
        "dataset; past it the upload ends DEADLINE_EXCEEDED (UPLOAD_TIMED_OUT).",
    )
    validation_processes: int = setting(
        "TUNING_VALIDATION_PROCESSES",
        2,
        "API: processes that check uploaded datasets, so that the CPU-heavy check never "
        "holds the event loop serving reads; started on first use (0: a thread of the API "
        "process, for tests and tiny deployments).",
    )
    tenant_max_validations: int = setting(
        "TUNING_TENANT_MAX_VALIDATIONS",
        1,
        "API: uploaded datasets of one tenant checked at once on one replica; the others "
        "wait their turn (each holding its upload slot).",
    )
    upstream_base_url: str = setting(
        "TUNING_UPSTREAM_BASE_URL",
        "https://generativelanguage.googleapis.com",
        "Worker and API (GenerateContent): Gemini API base URL (the emulator's URL offline).",
    )
    vertex_base_url: str = setting(
        "TUNING_VERTEX_BASE_URL",
        "",
        "Worker and API (GenerateContent): Vertex AI base URL for every location (the "
        "emulator's URL offline); empty: "
        "each Vertex tenant's own `https://{location}-aiplatform.googleapis.com`.",
    )
    storage_base_url: str = setting(
        "TUNING_STORAGE_BASE_URL",
        "https://storage.googleapis.com",
        "Worker: Cloud Storage JSON API base URL, where Vertex AI tenants' training files "
        "are staged (the emulator's URL offline).",
    )
    token_uri: str = setting(
        "TUNING_TOKEN_URI",
        "https://oauth2.googleapis.com/token",
        "API and worker: OAuth token endpoint that refreshes tenants' credentials.",
    )
    upstream_timeout_s: float = setting(
        "TUNING_UPSTREAM_TIMEOUT_S",
        30.0,
        "Worker and API: the longest wait for each read of an upstream answer (a "
        "GenerateContent whose answer takes longer is cut off, whatever its deadline).",
    )
    token_timeout_s: float = setting(
        "TUNING_TOKEN_TIMEOUT_S",
        30.0,
        "API and worker: timeout of one request to the OAuth token endpoint.",
    )
    tenant_max_running: int = setting(
        "TUNING_TENANT_MAX_RUNNING",
        20,
        "Jobs one tenant may have running at once; more wait QUEUED (tenants file may override).",
    )
    upstream_project_max_jobs: int = setting(
        "TUNING_UPSTREAM_PROJECT_MAX_JOBS",
        0,
        "Worker: tuning jobs one Vertex AI project may run at once, shared by its tenants; "
        "more wait QUEUED for a slot (0: no limit; tenants file's `upstream_projects` may "
        "override per project).",
    )
    tenant_creates_per_minute: float = setting(
        "TUNING_TENANT_CREATES_PER_MINUTE",
        60.0,
        "CreateTuningJob calls one tenant may make per minute (tenants file may override).",
    )
    tenant_create_burst: int = setting(
        "TUNING_TENANT_CREATE_BURST",
        20,
        "CreateTuningJob calls one tenant may make at once above that rate.",
    )
    tenant_validates_per_minute: float = setting(
        "TUNING_TENANT_VALIDATES_PER_MINUTE",
        DEFAULT_VALIDATES_PER_MINUTE,
        "CreateTuningJob calls with `validate_only` one tenant may make per minute, apart "
        "from its create quota (0: no limit; tenants file may override).",
    )
    tenant_validate_burst: int = setting(
        "TUNING_TENANT_VALIDATE_BURST",
        DEFAULT_VALIDATE_BURST,
        "`validate_only` calls one tenant may make at once above that rate.",
    )
    tenant_max_datasets: int = setting(
        "TUNING_TENANT_MAX_DATASETS",
        DEFAULT_MAX_DATASETS,
        "Datasets one tenant may keep stored; UploadDataset past it is RESOURCE_EXHAUSTED "
        "(STORAGE_QUOTA_EXCEEDED) until one is deleted (tenants file may override; 0: no "
        "limit).",
    )
    tenant_max_stored_bytes: int = setting(
        "TUNING_TENANT_MAX_STORED_BYTES",
        DEFAULT_MAX_STORED_BYTES,
        "Bytes of training examples one tenant may keep stored: its datasets', and its jobs' "
        "inline ones until the job is deleted or removed by retention (tenants file may "
        "override; 0: no limit).",
    )
    generate_requests_per_minute: float = setting(
        "TUNING_GENERATE_REQUESTS_PER_MINUTE",
        DEFAULT_GENERATE_REQUESTS_PER_MINUTE,
        "API: GenerateContent and StreamGenerateContent calls one tenant may make per "
        "minute, across the fleet; a minute's worth may come at once (0: no limit; tenants "
        "file may override).",
    )
    generate_tokens_per_minute: float = setting(
        "TUNING_GENERATE_TOKENS_PER_MINUTE",
        DEFAULT_GENERATE_TOKENS_PER_MINUTE,
        "API: tokens (prompt and answer, as the upstream counts them) one tenant's generate "
        "calls may use per minute, across the fleet; a call is admitted on an estimate "
        "(prompt characters / 4) and settled on the upstream's count (0: no limit; tenants "
        "file may override).",
    )
    generate_max_concurrent: int = setting(
        "TUNING_GENERATE_MAX_CONCURRENT",
        DEFAULT_GENERATE_MAX_CONCURRENT,
        "API: generate calls one tenant may have in flight at once, across the fleet (0: no "
        "limit; tenants file may override).",
    )
    tenant_training_token_budget: int = setting(
        "TUNING_TENANT_TRAINING_TOKEN_BUDGET",
        0,
        "API: estimated training tokens (examples' characters / 4 x epochs) of the jobs one "
        "tenant may create in a UTC month; a create past it is RESOURCE_EXHAUSTED "
        "(TRAINING_BUDGET_SPENT) until the next month (0: no budget; tenants file may "
        "override as `training_token_budget`).",
    )
    budget_warning_fraction: float = setting(
        "TUNING_BUDGET_WARNING_FRACTION",
        DEFAULT_BUDGET_WARNING_FRACTION,
        "API: share of a tenant's training token budget whose passing by a create is logged "
        "as a warning (the worker exports `tuning_training_budget_used_ratio` to alert on).",
    )
    generate_slot_lease_s: float = setting(
        "TUNING_GENERATE_SLOT_LEASE_S",
        300.0,
        "API: longest a generate call counts against its tenant's concurrency if its "
        "replica dies before giving its slot back (a call with a shorter deadline: that "
        "deadline); a call still running past it stops counting.",
    )
    job_retention_s: float = setting(
        "TUNING_JOB_RETENTION_S",
        30 * 24 * 3600.0,
        "Worker: seconds a finished job (SUCCEEDED, FAILED, CANCELLED) is kept after it "
        "ended; then its record is removed, its tuned model upstream is kept (0: forever).",
    )
    dataset_retention_s: float = setting(
        "TUNING_DATASET_RETENTION_S",
        30 * 24 * 3600.0,
        "Worker: seconds a dataset is kept after its upload or its last use by "
        "CreateTuningJob; then it is removed (0: forever).",
    )
    upstream_rps: float = setting(
        "TUNING_UPSTREAM_RPS",
        10.0,
        "Worker: upstream requests per second for the whole fleet together (0: no limit); "
        "for a quota of N per second, N - 1 with a burst of 1 keeps 429s under 1%.",
    )
    upstream_burst: int = setting(
        "TUNING_UPSTREAM_BURST", 10, "Worker: requests the fleet may send at once above the rate."
    )
    sweep_interval_s: float = setting(
        "TUNING_SWEEP_INTERVAL_S",
        60.0,
        "Worker: how often a worker re-schedules unfinished jobs a crash left unscheduled.",
    )
    worker_concurrency: int = setting(
        "TUNING_WORKER_CONCURRENCY", 32, "Worker: jobs one worker process handles at once."
    )
    worker_idle_s: float = setting(
        "TUNING_WORKER_IDLE_S", 0.5, "Worker: longest sleep between looks for due work."
    )
    job_lease_s: float = setting(
        "TUNING_JOB_LEASE_S",
        30.0,
        "Worker: lease on a job record (its fencing epoch); renewed at a third of it while "
        "a visit runs, and the longest a stopping worker waits for its visits.",
    )
    claim_lease_s: float = setting(
        "TUNING_CLAIM_LEASE_S",
        30.0,
        "Worker: how far a claimed schedule entry is pushed ahead, so that a job whose "
        "worker died comes due again by itself; pushed again while the visit runs.",
    )
    poll_min_s: float = setting(
        "TUNING_POLL_MIN_S", 5.0, "Worker: first status poll after submission."
    )
    poll_max_s: float = setting(
        "TUNING_POLL_MAX_S", 60.0, "Worker: longest interval between status polls."
    )
    poll_growth: float = setting(
        "TUNING_POLL_GROWTH", 1.5, "Worker: factor the poll interval grows by after each poll."
    )
    retry_base_s: float = setting(
        "TUNING_RETRY_BASE_S", 1.0, "Worker: base of the full-jitter backoff after a failed step."
    )
    retry_max_s: float = setting(
        "TUNING_RETRY_MAX_S", 300.0, "Worker: cap of the backoff after a failed step."
    )
    retry_budget_s: float = setting(
        "TUNING_RETRY_BUDGET_S",
        900.0,
        "Worker: longest a step may keep failing transiently before the job is dead-lettered.",
    )
    step_timeout_s: float = setting(
        "TUNING_STEP_TIMEOUT_S",
        120.0,
        "Worker: deadline of one step (all its upstream requests together).",
    )
    visit_timeout_s: float = setting(
        "TUNING_VISIT_TIMEOUT_S",
        300.0,
        "Worker: hard deadline of one visit to a job (its steps together; keep it above "
        "`TUNING_STEP_TIMEOUT_S`); past it the visit stops, sends nothing more upstream and "
        "releases the job for another worker.",
    )
    max_step_attempts: int = setting(
        "TUNING_MAX_STEP_ATTEMPTS",
        10,
        "Worker: transiently failed attempts at one step before the job is dead-lettered (FAILED).",
    )
    max_unfinished_visits: int = setting(
        "TUNING_MAX_UNFINISHED_VISITS",
        10,
        "Worker: times a job may be handed to a worker whose visit never finished (it "
        "crashed or stalled) before the job is dead-lettered (FAILED).",
    )
    delete_cancelled_models: bool = setting(
        "TUNING_DELETE_CANCELLED_MODELS",
        True,
        "Worker: delete the partial tuned model upstream after a cancel (the reconciler "
        "follows it too).",
    )
    reconcile_interval_s: float = setting(
        "TUNING_RECONCILE_INTERVAL_S",
        300.0,
        "Worker: how often each worker tries to run the reconciler's pass (the first one "
        "an interval after it starts), which deletes models upstream left by cancelled, "
        "failed, deleted or unknown jobs; one pass runs at a time in the fleet, and about "
        "one per interval (0: never).",
    )
    reconcile_grace_s: float = setting(
        "TUNING_RECONCILE_GRACE_S",
        600.0,
        "Worker: seconds a model upstream is left alone after it last changed and after its "
        "job ended or was removed, before the reconciler may delete it; keep it well above "
        "`TUNING_JOB_LEASE_S`.",
    )
    reconcile_pages_per_pass: int = setting(
        "TUNING_RECONCILE_PAGES_PER_PASS",
        50,
        "Worker: pages of 100 models one reconciler pass lists upstream, all tenants together.",
    )
    reconcile_deletes_per_pass: int = setting(
        "TUNING_RECONCILE_DELETES_PER_PASS",
        100,
        "Worker: models one reconciler pass deletes upstream at most; the rest wait for the "
        "next pass.",
    )

    def poll_policy(self) -> PollPolicy:
        """The poll intervals a running job asks for (core.domain.polling)."""
        return PollPolicy(self.poll_min_s, self.poll_max_s, self.poll_growth)

    def default_quotas(self) -> TenantQuotas:
        """The quotas of a tenant the tenants file says nothing special about."""
        return TenantQuotas(
            max_running=self.tenant_max_running,
            creates_per_minute=self.tenant_creates_per_minute,
            create_burst=self.tenant_create_burst,
            validates_per_minute=self.tenant_validates_per_minute,
            validate_burst=self.tenant_validate_burst,
            max_datasets=self.tenant_max_datasets,
            max_stored_bytes=self.tenant_max_stored_bytes,
            generate_requests_per_minute=self.generate_requests_per_minute,
            generate_tokens_per_minute=self.generate_tokens_per_minute,
            generate_max_concurrent=self.generate_max_concurrent,
            training_token_budget=self.tenant_training_token_budget,
            budget_warning_fraction=self.budget_warning_fraction,
        )

    def catalogue(self) -> Catalogue:
        """The base models' retirement dates; a configuration error for a bad entry."""
        try:
            return Catalogue.from_entries(
                self.base_model_retirements, warning_days=self.retirement_warning_days
            )
        except ValueError as exc:
            raise SystemExit(f"configuration error: TUNING_BASE_MODEL_RETIREMENTS: {exc}") from None

    def facade_base_model_table(self) -> dict[str, str]:
        """`TUNING_FACADE_BASE_MODELS` as a mapping, an old surface's name onto a Vertex AI
        base model; a configuration error for an entry that is not `old=new`."""
        table: dict[str, str] = {}
        for entry in self.facade_base_models:
            old, _, new = (part.strip() for part in entry.partition("="))
            if not old or not new:
                raise SystemExit(
                    f"configuration error: TUNING_FACADE_BASE_MODELS: {entry!r} is not old=new"
                )
            table[old] = new
        return table

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build settings from `environ`; unset variables keep their defaults."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(f.metadata["env"])
            if raw is not None:
                values[f.name] = _parse(f.metadata["env"], raw, f.default)
        return cls(**values)


LIMIT_FIELDS = (
    "grpc_max_message_bytes",
    "grpc_small_request_max_bytes",
    "upload_max_chunk_bytes",
    "dataset_max_bytes",
    "dataset_stream_max_bytes",
    "min_examples",
    "max_examples",
    "max_input_chars",
    "max_output_chars",
    "max_reported_violations",
    "max_filter_chars",
    "status_cache_entries",
    "status_cache_max_bytes",
    "tenant_receive_bytes_per_s",
    "tenant_refusals_per_s",
    "tenant_refusal_burst",
    "tenant_max_uploads",
    "max_uploads",
    "tenant_max_watches",
    "max_watches",
    "job_max_events",
    "audit_max_records",
    "audit_retention_s",
    "upload_idle_timeout_s",
    "upload_max_s",
    "validation_processes",
    "tenant_max_validations",
    "tenant_max_running",
    "upstream_project_max_jobs",
    "tenant_creates_per_minute",
    "tenant_create_burst",
    "tenant_validates_per_minute",
    "tenant_validate_burst",
    "tenant_max_datasets",
    "tenant_max_stored_bytes",
    "generate_requests_per_minute",
    "generate_tokens_per_minute",
    "generate_max_concurrent",
    "tenant_training_token_budget",
    "generate_timeout_s",
    "job_retention_s",
    "dataset_retention_s",
    "upstream_rps",
    "upstream_burst",
)
"""The settings that bound what a caller or a tenant may use (docs/security.md's table)."""


def limits_table() -> str:
    """docs/security.md's table of the limits that are settings."""
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    rows = ["| limit (setting) | default | what it bounds |", "|---|---|---|"]
    for name in LIMIT_FIELDS:
        f = fields[name]
        rows.append(f"| `{f.metadata['env']}` | `{f.default}` | {f.metadata['doc']} |")
    return "\n".join(rows)


def to_env(settings: Settings) -> dict[str, str]:
    """The environment that `Settings.from_env` turns back into `settings`."""
    env = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, tuple):
            value = ",".join(value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        env[f.metadata["env"]] = str(value)
    return env


def _parse(env: str, raw: str, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            return _parse_bool(raw)
        if isinstance(default, tuple):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        return type(default)(raw)
    except ValueError as exc:
        raise SystemExit(f"configuration error: {env}={raw!r}: {exc}") from None


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def markdown_table() -> str:
    """The configuration table of docs/operations.md."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for f in dataclasses.fields(Settings):
        default = ",".join(f.default) if isinstance(f.default, tuple) else f.default
        rows.append(f"| `{f.metadata['env']}` | `{default}` | {f.metadata['doc']} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
