"""GenerateContent on a tenant's tuned model: check the request, find the model, call it.

Unlike every other RPC, this one calls the upstream from the API process itself, on the
caller's request: a generate is interactive, and a round through the Redis queue and a
worker would add latency for nothing (docs/architecture.md). The tenant's token comes
from the same credential resolution the worker uses (core.security.credentials); the
request goes through core.upstream_http on the process's one HTTP session, within the
call's deadline (the servicer sets it), and its errors come back as the status they mean.
StreamGenerateContent is the same request, checked and resolved by the same code
(`_target`), answered from the upstream's `streamGenerateContent?alt=sse`: each event is
mapped and yielded as it arrives (core.upstream_http's `events`), within the deadline.

Every bound is checked before anything is read (`check_request`), each violation naming
its field path (`contents[3].parts[0].text`); the request's size, and so its text in
all, is bounded by the method's message limit (service.message_limits). The bounds:

- `model`: `tuningJobs/{id}`, `tuningJobs/{id}/checkpoints/{checkpoint_id}` (the
  checkpoint id 1-20 of [A-Za-z0-9_-]) or `aliases/{alias_id}` (the whole at most
  MAX_NAME_CHARS); `request_key` at most MAX_REQUEST_KEY_CHARS;
- `contents`: 1 to MAX_CONTENTS, each of role `user` or `model` and 1 to MAX_PARTS
  parts; `system_instruction`: at most MAX_PARTS parts; no text part empty;
- `generation_config`: candidate_count 1-8, max_output_tokens 1-65,536, temperature
  0-2 and top_p 0-1 (Google's ranges; NaN refused), top_k 1-1,000, at most 5 stop
  sequences (Google's limit) of 1-128 characters each;
- `safety_settings`: at most one per category, a category and a threshold each.

Then the model: a job that is not the caller's is NOT_FOUND, exactly as one that does
not exist (no tenant learns another's ids); a checkpoint on a Gemini API job (which has
none) INVALID_ARGUMENT; a job that has not SUCCEEDED FAILED_PRECONDITION naming its
state; a checkpoint the job does not list NOT_FOUND.

The request is sent in the model's training format, the job's prompt template and system
instruction applied unless the caller opts out, with the tuned model's default sampling
where the caller's config leaves it unset (service.training_format), and the answer says
what of the format was applied.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import aiohttp

from core.domain.job import JOB_ID_SHAPE, JOB_NAME_PREFIX, Job
from core.domain.providers import ProviderKind, vertex_host
from core.domain.states import JobState
from core.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    ModelNotReady,
    NotFound,
    UpstreamRetryable,
    echo,
)
from core.redis.aliases import ALIAS_ID, ALIAS_NAME_PREFIX, AliasStore
from core.runtime.metrics import Metrics
from core.runtime.settings import Settings
from core.security.token_source import TokenSource
from core.upstream_http import DEFAULT_HOLD_OFF_S, UNFENCED, UpstreamHttp
from service.generation_mapping import request_body, response_of
from service.inference_limits import InferenceLimits
from service.training_format import Formatted, formatted
from service.validation import MAX_NAME_CHARS
from tuning.v1 import generation_service_pb2 as gen

MAX_CONTENTS = 100
"""Contents (turns) in one request."""
MAX_PARTS = 16
"""Parts in one content, or in the system instruction."""
CANDIDATE_COUNTS = (1, 8)
MAX_OUTPUT_TOKENS = (1, 65_536)
TEMPERATURES = (0.0, 2.0)
TOP_PS = (0.0, 1.0)
TOP_KS = (1, 1_000)
MAX_STOP_SEQUENCES = 5
"""Google's own limit."""
MAX_STOP_SEQUENCE_CHARS = 128
MAX_REQUEST_KEY_CHARS = 128
ROLES = ("user", "model")
CHECKPOINTS_INFIX = "/checkpoints/"
CHECKPOINT_ID = re.compile(r"[A-Za-z0-9_-]{1,20}")
SERVER_SENT_EVENTS = {"alt": "sse"}
"""A stream's framing, asked of the upstream: one event per chunk, as google-genai asks."""
_ENDPOINT = re.compile(r"projects/[^/]+/locations/(?P<location>[^/]+)/endpoints/[^/:]+")
_IDS = re.compile(r"(projects|locations|endpoints|tunedModels)/[^/:]+")

Violations = Iterator[FieldViolation]
_Bounded = Literal["candidate_count", "max_output_tokens", "temperature", "top_p", "top_k"]


@dataclass(frozen=True)
class ModelName:
    """A parsed `model`: the job's id, and the checkpoint's ("" for the job's model)."""

    job_id: str
    checkpoint_id: str = ""


@dataclass(frozen=True)
class Routed:
    """Where a call went: the tuned model's name, and, through an alias, its revision and
    whether the call took the canary; and the request sent, in the model's training format
    (service.training_format)."""

    model: str
    alias_revision: int = 0
    canary: bool = False
    format: Formatted | None = None
    base_model: str = ""
    """The tuned model's base model (for the metrics)."""

    @property
    def sent(self) -> gen.GenerateContentRequest:
        assert self.format is not None  # set once the job is known (`_target`)
        return self.format.request

    def told(self, response: gen.GenerateContentResponse) -> gen.GenerateContentResponse:
        """`response`, saying so."""
        response.resolved_model = self.model
        response.alias_revision = self.alias_revision
        response.canary = self.canary
        if self.format is not None:
            response.prompt_template_applied = self.format.template_applied
            response.system_instruction_applied = self.format.instruction_applied
        return response


class JobReads(Protocol):
    """Where a call's job is read: the API's status cache (service.status.StatusReader), so
    a model called often costs no Redis round trip; the job store in tests."""

    async def get(self, tenant: str, job_id: str) -> Job | None: ...


class GenerationApi:
    """GenerateContent's and StreamGenerateContent's behaviour, behind the thin servicer
    (service.generation_servicer)."""

    def __init__(
        self,
        jobs: JobReads,
        aliases: AliasStore,
        auth_for: Callable[[str], TokenSource],
        http: aiohttp.ClientSession,
        *,
        settings: Settings,
        limits: InferenceLimits,
        metrics: Metrics | None = None,
    ) -> None:
        self._jobs = jobs
        self._aliases = aliases
        self._auth_for = auth_for
        self._settings = settings
        self._limits = limits
        self._http, self._metrics = http, metrics
        self._vertex: dict[str, UpstreamHttp] = {}
        self._gemini = self._upstream(settings.upstream_base_url)

    async def aclose(self) -> None:
        """Wait for the calls' settlements still being written (service.inference_limits)."""
        await self._limits.aclose()

    async def generate(
        self, tenant: str, request: gen.GenerateContentRequest
    ) -> gen.GenerateContentResponse:
        """The tuned model's answer to `request`, on behalf of `tenant`."""
        api, path, routed = await self._target(tenant, request, "generateContent")
        limited = self._limits.call(
            tenant, "GenerateContent", path, routed.sent, base_model=routed.base_model
        )
        async with limited as usage:
            with _retry_delay_told():
                answer = await api.call(
                    self._auth_for(tenant), "POST", path, json=request_body(routed.sent)
                )
            response = response_of(answer, request.model)
            usage.told(response)
        return routed.told(response)

    async def stream(
        self, tenant: str, request: gen.GenerateContentRequest
    ) -> AsyncGenerator[gen.GenerateContentResponse]:
        """The tuned model's answer to `request` in chunks, each yielded the moment the
        upstream sends it; closing this closes the upstream stream."""
        api, path, routed = await self._target(tenant, request, "streamGenerateContent")
        auth, body = self._auth_for(tenant), request_body(routed.sent)
        limited = self._limits.call(
            tenant, "StreamGenerateContent", path, routed.sent, base_model=routed.base_model
        )
        async with limited as usage:
            events = api.events(auth, "POST", path, json=body, params=SERVER_SENT_EVENTS)
            async with contextlib.aclosing(events):
                with _retry_delay_told():
                    async for event in events:
                        chunk = response_of(event, request.model)
                        usage.told(chunk)
                        yield routed.told(chunk)

    async def _target(
        self, tenant: str, request: gen.GenerateContentRequest, verb: str
    ) -> tuple[UpstreamHttp, str, Routed]:
        """The upstream host, the path of the model's `verb`, and how the call was routed,
        once the request is within its bounds and names a model of the tenant's that can
        answer (an alias is resolved first, in one Redis read)."""
        name = check_request(request, self._settings.max_reported_violations)
        routed = Routed(request.model)
        if isinstance(name, str):  # an alias's id
            resolved = await self._aliases.resolve(tenant, name, request.request_key)
            routed = Routed(resolved.target, resolved.revision, resolved.canary)
            target, _ = parse_model(resolved.target)
            if target is None:  # an alias never holds another shape (its writes check)
                raise NotFound(f"{echo(request.model)} points at no model")
            name = target
        job = await self._job(tenant, name)
        api, path = self._upstream_of(job, routed.model, name.checkpoint_id, verb)
        format_ = formatted(job, request)
        return api, path, dataclasses.replace(routed, format=format_, base_model=job.base_model)

    async def _job(self, tenant: str, name: ModelName) -> Job:
        job = await self._jobs.get(tenant, name.job_id)
        if job is None:  # another tenant's job too: the same answer
            raise NotFound(f"{JOB_NAME_PREFIX}{name.job_id} not found")
        if name.checkpoint_id and job.provider.kind is ProviderKind.GEMINI_API:
            raise InvalidArgument(
                f"{job.name} is a Gemini API job, which has no checkpoints",
                [FieldViolation("model", "a Gemini API job has no checkpoints: call the job")],
            )
        if job.state is not JobState.SUCCEEDED:
            raise ModelNotReady(job.name, job.state.value)
        return job

    def _upstream_of(
        self, job: Job, model: str, checkpoint_id: str, verb: str
    ) -> tuple[UpstreamHttp, str]:
        """The upstream host and the path of the job's (or its checkpoint's) `verb`."""
        if job.provider.kind is ProviderKind.GEMINI_API:
            return self._gemini, f"/v1beta/{job.tuned_model}:{verb}"
        endpoint = _endpoint(job, model, checkpoint_id)
        return self._vertex_at(endpoint), f"/v1/{endpoint}:{verb}"

    def _vertex_at(self, endpoint: str) -> UpstreamHttp:
        """Vertex AI at the endpoint's location (one client per location)."""
        found = _ENDPOINT.fullmatch(endpoint)
        location = found["location"] if found else ""
        api = self._vertex.get(location)
        if api is None:
            api = self._upstream(self._settings.vertex_base_url or vertex_host(location))
            self._vertex[location] = api
        return api

    def _upstream(self, base_url: str) -> UpstreamHttp:
        """A client of the upstream at `base_url`: unfenced (a generate changes nothing),
        its answers waited for up to TUNING_GENERATE_TIMEOUT_S, or the caller's deadline."""
        read_s = self._settings.generate_timeout_s
        return UpstreamHttp(
            self._http, base_url, _route, None, self._metrics, fence=UNFENCED, read_s=read_s
        )


def _endpoint(job: Job, model: str, checkpoint_id: str) -> str:
    """The Vertex AI endpoint serving the job's model, or its checkpoint."""
    if not checkpoint_id:
        endpoint = job.tuned_model_endpoint
    else:
        known = {c.checkpoint_id: c.endpoint for c in job.checkpoints}
        if checkpoint_id not in known:
            listed = ", ".join(known) or "none"
            raise NotFound(f"{echo(model)} not found: {job.name} has checkpoints {listed}")
        endpoint = known[checkpoint_id]
    if not endpoint:
        raise FailedPrecondition(f"{echo(model)} is not served from an endpoint (yet)")
    return endpoint


@contextlib.contextmanager
def _retry_delay_told() -> Iterator[None]:
    """The caller is told when to retry, never "at once" (RetryInfo of 0 s) when the
    upstream did not say."""
    try:
        yield
    except UpstreamRetryable as exc:
        exc.retry_after_s = exc.retry_after_s or DEFAULT_HOLD_OFF_S
        raise


def _route(path: str) -> str:
    """`/v1/projects/*/locations/*/endpoints/*:generateContent`: the path without its ids
    (its query, `alt=sse`, is not in it)."""
    return _IDS.sub(r"\1/*", path)


# The bounds.


def check_request(request: gen.GenerateContentRequest, max_reported: int) -> ModelName | str:
    """The parsed `model` (an alias: its id), or InvalidArgument naming every bad field
    (the first `max_reported`) before any work."""
    name: ModelName | str | None
    if request.model.startswith(ALIAS_NAME_PREFIX):
        name, violations = _alias(request.model)
    else:
        name, violations = parse_model(request.model)
    if len(request.request_key) > MAX_REQUEST_KEY_CHARS:
        violations.append(
            FieldViolation("request_key", f"at most {MAX_REQUEST_KEY_CHARS} characters")
        )
    violations += [
        *_contents(request.contents),
        *_instruction(request),
        *config_violations(request.generation_config),
        *_safety(request.safety_settings),
    ]
    if name is None or violations:
        first = violations[0]
        more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
        message = f"invalid GenerateContent request: {first.field}: {first.description}{more}"
        raise InvalidArgument(message, violations[:max_reported])
    return name


def parse_model(model: str) -> tuple[ModelName | None, list[FieldViolation]]:
    """A job's or checkpoint's name parsed, or the violation of `model` (the one parser of
    these names: aliases' targets use it too)."""
    head, infix, checkpoint_id = model.partition(CHECKPOINTS_INFIX)
    job_id = head.removeprefix(JOB_NAME_PREFIX)
    valid = (
        len(model) <= MAX_NAME_CHARS
        and head.startswith(JOB_NAME_PREFIX)
        and JOB_ID_SHAPE.fullmatch(job_id) is not None
        and (not infix or CHECKPOINT_ID.fullmatch(checkpoint_id) is not None)
    )
    if valid:
        return ModelName(job_id, checkpoint_id), []
    shape = "must be tuningJobs/{id} or tuningJobs/{id}/checkpoints/{checkpoint_id}"
    return None, [FieldViolation("model", f"{shape}, a job this service gave")]


def _alias(model: str) -> tuple[str | None, list[FieldViolation]]:
    alias_id = model.removeprefix(ALIAS_NAME_PREFIX)
    if len(model) <= MAX_NAME_CHARS and ALIAS_ID.fullmatch(alias_id):
        return alias_id, []
    return None, [FieldViolation("model", "an alias must be aliases/{alias_id} (AIP-122 id)")]


def _contents(contents: Sequence[gen.Content]) -> Violations:
    if not contents:
        yield FieldViolation("contents", "required: at least one content")
    elif len(contents) > MAX_CONTENTS:
        yield FieldViolation("contents", f"{len(contents)} contents; at most {MAX_CONTENTS}")
    else:
        for i, content in enumerate(contents):
            path = f"contents[{i}]"
            if content.role not in ROLES:
                yield FieldViolation(f"{path}.role", "must be user or model")
            yield from _parts(path, content)


def _instruction(request: gen.GenerateContentRequest) -> Violations:
    if request.HasField("system_instruction"):
        yield from _parts("system_instruction", request.system_instruction)


def _parts(path: str, content: gen.Content) -> Violations:
    if not content.parts:
        yield FieldViolation(f"{path}.parts", "required: at least one part")
    elif len(content.parts) > MAX_PARTS:
        yield FieldViolation(f"{path}.parts", f"{len(content.parts)} parts; at most {MAX_PARTS}")
    else:
        for j, part in enumerate(content.parts):
            if not part.text:
                yield FieldViolation(f"{path}.parts[{j}].text", "required (empty)")


def config_violations(config: gen.GenerationConfig, path: str = "generation_config") -> Violations:
    """What is out of bounds in `config`, each named under `path`: the one check of a
    generation config's values (a tuned model's default sampling is held to it too,
    service.gemini_facade.create_request)."""
    ranges: dict[_Bounded, tuple[float, float]] = {
        "candidate_count": CANDIDATE_COUNTS,
        "max_output_tokens": MAX_OUTPUT_TOKENS,
        "temperature": TEMPERATURES,
        "top_p": TOP_PS,
        "top_k": TOP_KS,
    }
    for field, (least, most) in ranges.items():
        if config.HasField(field) and not least <= getattr(config, field) <= most:  # NaN too
            yield FieldViolation(f"{path}.{field}", f"must be from {least:g} to {most:g}")
    yield from _stop_sequences(config.stop_sequences)


def _stop_sequences(sequences: Sequence[str]) -> Violations:
    path = "generation_config.stop_sequences"
    if len(sequences) > MAX_STOP_SEQUENCES:
        yield FieldViolation(path, f"{len(sequences)} sequences; at most {MAX_STOP_SEQUENCES}")
        return
    for k, sequence in enumerate(sequences):
        if not 1 <= len(sequence) <= MAX_STOP_SEQUENCE_CHARS:
            yield FieldViolation(f"{path}[{k}]", f"1 to {MAX_STOP_SEQUENCE_CHARS} characters")


def _safety(settings: Sequence[gen.SafetySetting]) -> Violations:
    categories = gen.HarmCategory.values()
    if len(settings) >= len(categories):  # one per category, UNSPECIFIED excluded
        yield FieldViolation("safety_settings", f"at most one per category ({len(categories) - 1})")
        return
    thresholds = gen.SafetySetting.HarmBlockThreshold.values()
    seen: set[int] = set()
    for i, setting in enumerate(settings):
        path = f"safety_settings[{i}]"
        if setting.category not in categories or not setting.category:
            yield FieldViolation(f"{path}.category", "required: a HarmCategory")
        elif setting.category in seen:
            name = gen.HarmCategory.Name(setting.category)
            yield FieldViolation(f"{path}.category", f"a second setting for {name}")
        seen.add(setting.category)
        if setting.threshold not in thresholds or not setting.threshold:
            yield FieldViolation(f"{path}.threshold", "required: a HarmBlockThreshold")
