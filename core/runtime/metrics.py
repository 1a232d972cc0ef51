"""Prometheus metrics of both processes, on a registry each process makes in main().

Names follow Prometheus conventions: counters end in `_total`, durations are seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
GENERATE_LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
"""A generate answers in seconds, a stream may last minutes."""


@dataclass(frozen=True)
class Metrics:
    """Every metric the service exports."""

    registry: CollectorRegistry
    rpcs: Counter
    rpc_latency: Histogram
    upstream_requests: Counter
    upstream_latency: Histogram
    upstream_retries: Counter
    redis_round_trips: Counter
    token_refreshes: Counter
    queue_depth: Gauge
    oldest_queued_age: Gauge
    schedule_due: Gauge
    poll_lag: Gauge
    project_slots_used: Gauge
    project_jobs_waiting: Gauge
    jobs: Gauge
    jobs_stalled: Gauge
    status_cache_age: Gauge
    security_file_ok: Gauge
    reconciler_models: Counter
    reconciler_passes: Counter
    reconciler_last_pass: Gauge
    base_model_retire_time: Gauge
    generate_requests: Counter
    generate_tokens: Counter
    generate_latency: Histogram
    redis_up: Gauge
    lease_losses: Counter
    dead_letters: Counter
    usage_jobs: Gauge
    usage_training_tokens: Gauge
    training_budget_used: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> Metrics:
        r = registry or CollectorRegistry()
        return cls(
            registry=r,
            rpcs=Counter("tuning_rpcs", "gRPC calls handled.", ["method", "code"], registry=r),
            rpc_latency=Histogram(
                "tuning_rpc_duration_seconds",
                "gRPC handling time.",
                ["method"],
                buckets=LATENCY_BUCKETS_S,
                registry=r,
            ),
            upstream_requests=Counter(
                "tuning_upstream_requests",
                "Requests to the upstream tuning API.",
                ["method", "status"],
                registry=r,
            ),
            upstream_latency=Histogram(
                "tuning_upstream_request_duration_seconds",
                "Upstream request time.",
                ["method"],
                buckets=LATENCY_BUCKETS_S,
                registry=r,
            ),
            upstream_retries=Counter(
                "tuning_upstream_retries",
                "Job steps put off to retry, by reason.",
                ["reason"],
                registry=r,
            ),
            redis_round_trips=Counter(
                "tuning_redis_round_trips",
                "Round trips to Redis: a command or a whole pipeline sent (core.redis.client).",
                registry=r,
            ),
            token_refreshes=Counter(
                "tuning_token_refreshes",
                "OAuth token refreshes, by tenant and outcome (ok, refused, unreachable).",
                ["tenant", "outcome"],
                registry=r,
            ),
            queue_depth=Gauge(
                "tuning_queue_depth", "Jobs waiting for admission.", ["tenant"], registry=r
            ),
            oldest_queued_age=Gauge(
                "tuning_oldest_queued_job_age_seconds",
                "Age of the oldest queued job.",
                ["tenant"],
                registry=r,
            ),
            schedule_due=Gauge(
                "tuning_schedule_due",
                "Admitted jobs with work (not a poll) due now: what more workers would take.",
                registry=r,
            ),
            project_slots_used=Gauge(
                "tuning_project_slots_used",
                "Jobs holding one of a Vertex AI project's slots (its concurrent tuning jobs).",
                ["project"],
                registry=r,
            ),
            project_jobs_waiting=Gauge(
                "tuning_project_jobs_waiting",
                "Jobs waiting QUEUED in a Vertex AI project's line for a slot.",
                ["project"],
                registry=r,
            ),
            poll_lag=Gauge(
                "tuning_poll_lag_seconds",
                "How long the oldest due status poll has waited for the upstream budget.",
                registry=r,
            ),
            jobs=Gauge("tuning_jobs", "Unfinished jobs by state.", ["tenant", "state"], registry=r),
            usage_jobs=Gauge(
                "tuning_usage_jobs_created",
                "Jobs created this UTC month (core.domain.usage), sampled by the worker.",
                ["tenant"],
                registry=r,
            ),
            usage_training_tokens=Gauge(
                "tuning_usage_training_tokens",
                "Training tokens this UTC month: `estimated` at create (characters / 4 x "
                "epochs), `billable` as the upstream reported them for jobs ended this month.",
                ["tenant", "kind"],
                registry=r,
            ),
            training_budget_used=Gauge(
                "tuning_training_budget_used_ratio",
                "Share of the tenant's monthly training token budget used (0: no budget); "
                "alert at TUNING_BUDGET_WARNING_FRACTION, creates are refused past 1.",
                ["tenant"],
                registry=r,
            ),
            jobs_stalled=Gauge(
                "tuning_jobs_stalled",
                "RUNNING jobs whose progress has not moved for TUNING_STALL_AFTER_S.",
                ["tenant"],
                registry=r,
            ),
            status_cache_age=Gauge(
                "tuning_status_cache_age_seconds",
                "Oldest status fetched from upstream among running jobs.",
                ["tenant"],
                registry=r,
            ),
            security_file_ok=Gauge(
                "tuning_security_file_ok",
                "1 while a mounted security file (tenants, keys) loads; 0: failing closed.",
                ["file"],
                registry=r,
            ),
            reconciler_models=Counter(
                "tuning_reconciler_models",
                "Models upstream the reconciler looked at, by what it did (worker.reconciler).",
                ["outcome"],
                registry=r,
            ),
            reconciler_passes=Counter(
                "tuning_reconciler_passes",
                "Reconciler passes tried, by how they ended.",
                ["result"],
                registry=r,
            ),
            reconciler_last_pass=Gauge(
                "tuning_reconciler_last_pass_timestamp_seconds",
                "When this worker last finished a reconciler pass (seconds since the epoch).",
                registry=r,
            ),
            # The catalogue (TUNING_BASE_MODEL_RETIREMENTS): an alert on
            # `tuning_base_model_retire_timestamp_seconds - time() < 90 * 86400` warns of
            # each base model ahead of its retirement (docs/operations.md).
            base_model_retire_time=Gauge(
                "tuning_base_model_retire_timestamp_seconds",
                "When each base model retires (seconds since the epoch), as configured.",
                ["base_model"],
                registry=r,
            ),
            # Generate, per tenant (the tenants file bounds them) and never per model: a
            # job's name is unbounded; the provider kind and the method are not.
            generate_requests=Counter(
                "tuning_generate_requests",
                "Generate calls by tenant, provider kind, base model of the tuned model, method "
                "and outcome (a gRPC code; refusals by the inference limits included).",
                ["tenant", "provider", "base_model", "method", "code"],
                registry=r,
            ),
            generate_tokens=Counter(
                "tuning_generate_tokens",
                "Tokens of generate calls as the upstream counted them, by tenant, base model "
                "and kind (prompt, candidates).",
                ["tenant", "base_model", "kind"],
                registry=r,
            ),
            generate_latency=Histogram(
                "tuning_generate_duration_seconds",
                "Time of admitted generate calls, admission to settlement (a stream whole).",
                ["tenant", "base_model", "method"],
                buckets=GENERATE_LATENCY_BUCKETS_S,
                registry=r,
            ),
            redis_up=Gauge(
                "tuning_redis_up",
                "1 while this process's latest health check reached Redis, else 0.",
                registry=r,
            ),
            lease_losses=Counter(
                "tuning_lease_losses",
                "Visits stopped because the job's lease was lost (taken over by another "
                "worker, or not renewed in time).",
                registry=r,
            ),
            dead_letters=Counter(
                "tuning_dead_letters",
                "Jobs failed as dead letters: handed out TUNING_MAX_UNFINISHED_VISITS times "
                "without a visit finishing.",
                ["tenant"],
                registry=r,
            ),
        )

    def serve(self, listen: str) -> None:
        """Serve /metrics over HTTP on `host:port` (a thread of prometheus_client's)."""
        host, _, port = listen.rpartition(":")
        start_http_server(int(port), addr=host.strip("[]") or "0.0.0.0", registry=self.registry)
