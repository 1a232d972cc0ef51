"""VertexProvider: the TuningProvider interface over Vertex AI's `tuningJobs`.

Exactly one tuning job per platform job, though the server names it. Vertex AI assigns a
tuning job's id itself, so a retry cannot ask for the same id again and be told it
exists, as on the Gemini API. Instead the job's id goes into a label of the tuning job
(`label_key`), and the provider looks for a tuning job with that label
before it creates one, and again after any create whose outcome it cannot know (a
timeout, a dropped answer, a 5xx: `UpstreamRetryable`), adopting what it finds. The
listing asks the server to filter on the label, and every result's label is checked
again here, so a server that ignores the filter cannot make us adopt another's job.
One window stays open: a create still in flight inside the upstream when the next
attempt lists; the retry backoff, long against a create's latency, keeps it small.

The training file is staged first, in Cloud Storage, under a name made of the job's id
alone (`object_name`), create-only: a retry writes the same object or finds it written
(core.cloud_storage). It is also what tells the reconciler a job's clean-up is not
finished: `delete` removes it last, and only once the tuning job has ended (a job still
cancelling may yet make a model), so `list_owned` reports a tuning job while it runs or
while its staged file is there, and a deleted job's leftovers are found until they are
gone.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Sequence

from core.cloud_storage import GS_PREFIX, StorageClient
from core.domain.job import JOB_ID_SHAPE, TUNED_MODEL_ID_PREFIX, job_id_of_model
from core.domain.providers import VertexTarget
from core.domain.snapshots import Snapshot
from core.domain.upstream import UpstreamRef, UpstreamStatus
from core.errors import UpstreamNotFound, UpstreamRejected, UpstreamRetryable
from core.security.token_source import TokenSource
from core.upstream_http import Json, answer_text, parse_time
from worker.provider import OwnedPage, OwnedResource, TuningRequest
from worker.vertex.client import VertexClient
from worker.vertex.json_mapping import (
    ended,
    endpoints_of,
    model_of,
    state_of,
    status_from_tuning_job,
    training_lines,
    training_lines_of,
    tuning_job_body,
)

log = logging.getLogger(__name__)

TUNING_JOB = "tuningJob"
"""The kind of resource `list_owned` reports: a tuning job, with all it made."""
TENANT_LABEL_KEY = "tuning-platform-tenant"
"""The label that carries the job's tenant (tenants tuning in one project see each
other's tuning jobs; the reconciler keeps to its own)."""
DEFAULT_LABEL_KEY = "tuning-platform-job"
"""The label that carries the platform's job id on every tuning job it makes."""
LABEL_KEY_SHAPE = re.compile(r"[a-z][a-z0-9_-]{0,62}")
"""Google Cloud label keys: lowercase letters, digits, `_` and `-`, a letter first, <= 63."""
FIND_PAGE_SIZE = 100
MAX_FIND_PAGES = 20
"""The most pages a look-up by label reads; a filtered listing has one."""
CANCELLING = "JOB_STATE_CANCELLING"
"""A tuning job whose cancel Vertex AI has accepted, not yet ended."""
TRAINING_FILE = "training.jsonl"
VALIDATION_FILE = "validation.jsonl"
"""The staged training file's name under the job's own prefix (VertexTarget.staged_object)."""


class VertexProvider:
    """Tuning through `tuningJobs` at one `target`; the ref of a job is its tuning job's name.

    `client` must be for the target's location. `label_key` names the label that carries
    the job's id.
    """

    def __init__(
        self,
        client: VertexClient,
        storage: StorageClient,
        target: VertexTarget,
        *,
        label_key: str = DEFAULT_LABEL_KEY,
    ) -> None:
        if not LABEL_KEY_SHAPE.fullmatch(label_key):
            raise ValueError(f"not a Google Cloud label key: {label_key!r}")
        self._client = client
        self._storage = storage
        self._target = target
        self._parent = f"projects/{target.project}/locations/{target.location}"
        self._label_key = label_key

    def object_name(self, job_id: str, file_name: str = TRAINING_FILE) -> str:
        """A staged file of the job (its training file by default): named after the job
        alone, so a retry writes the same object."""
        return self._target.staged_object(job_id, file_name)

    def ref_for(self, model_id: str) -> UpstreamRef:
        """No name before the server gives one: the ref says which job to look for."""
        return UpstreamRef(tuned_model="", model_id=model_id)

    async def create(self, auth: TokenSource, request: TuningRequest) -> UpstreamStatus:
        """Adopt the job's tuning job if one exists; else stage the file and create it."""
        job_id = _job_id(request.model_id)
        found = await self._find(auth, job_id)
        if found is not None:
            log.info("%s already has job %s's label: adopting it", found.get("name"), job_id)
            return status_from_tuning_job(found, request.model_id)
        body = tuning_job_body(  # Refuses what v1 cannot do before anything is written.
            request,
            self._uri(self.object_name(job_id)),
            {self._label_key: job_id} | _tenant_label(request.tenant),
            self._uri(self.object_name(job_id, VALIDATION_FILE))
            if request.validation_examples
            else "",
        )
        await self._stage(auth, job_id, request)
        created = await self._create_once(auth, job_id, body)
        return status_from_tuning_job(created, request.model_id)

    async def _create_once(self, auth: TokenSource, job_id: str, body: Json) -> Json:
        try:
            return await self._client.create_tuning_job(auth, self._parent, body)
        except UpstreamRetryable:
            # It may have been made all the same: look before anything else is tried.
            found = await self._find(auth, job_id)
            if found is None:
                raise
            log.info("the create of job %s was made after all: %s", job_id, found.get("name"))
            return found
        except UpstreamRejected:
            # Refused: nothing was made, and the same create never passes. The staged
            # file would be nobody's to delete (no tuning job points the reconciler to it).
            await self._unstage(auth, job_id)
            raise

    async def _stage(self, auth: TokenSource, job_id: str, request: TuningRequest) -> None:
        """The validation file first: the training file is the reconciler's mark of a job,
        so once it is there everything this job staged is found and cleaned up."""
        system = request.system_instruction
        if request.validation_examples:
            lines = training_lines(request.validation_examples, system)
            name = self.object_name(job_id, VALIDATION_FILE)
            await self._storage.upload(auth, self._target.bucket, name, lines)
        chunks = training_lines_of(request.example_batches(), system)
        await self._storage.upload(auth, self._target.bucket, self.object_name(job_id), chunks)

    def _uri(self, name: str) -> str:
        return f"{GS_PREFIX}{self._target.bucket}/{name}"

    async def status(
        self, auth: TokenSource, ref: UpstreamRef, known: Sequence[Snapshot] = ()
    ) -> UpstreamStatus:
        """UpstreamNotFound if the job has no tuning job (or it is gone). Vertex AI's v1
        reports no snapshots: `known` is not needed."""
        job = await self._tuning_job(auth, ref)
        return status_from_tuning_job(job, ref.model_id or self._model_id_of(job))

    async def cancel(self, auth: TokenSource, ref: UpstreamRef) -> None:
        """`:cancel` unless the job has ended or is cancelling (asked already: the worker
        looks again until it ends, and must not ask again each time); a refusal because it
        just ended is no error."""
        job = await self._tuning_job(auth, ref)
        if ended(job) or state_of(job) == CANCELLING:
            return
        try:
            await self._client.cancel_tuning_job(auth, str(job["name"]))
        except UpstreamRejected as exc:
            if exc.status != "FAILED_PRECONDITION":
                raise

    async def generate(self, auth: TokenSource, ref: UpstreamRef, text: str) -> str:
        job = await self._tuning_job(auth, ref)
        endpoint = str(job.get("tunedModel", {}).get("endpoint", ""))
        if not endpoint:
            raise UpstreamRejected(f"{job.get('name')} has no endpoint to ask (yet)")
        answer = await self._client.generate_content(auth, endpoint, text)
        return answer_text(answer)

    async def delete(self, auth: TokenSource, ref: UpstreamRef) -> None:
        """Delete what the job made: its endpoints, its model, then (once the tuning job
        has ended) its staged file; each already gone is fine. Tuning jobs themselves
        cannot be deleted on Vertex AI."""
        job: Json | None = None
        with contextlib.suppress(UpstreamNotFound):
            job = await self._tuning_job(auth, ref)
        job_id = job_id_of_model(ref.model_id) or (self._job_id_of(job) if job else None)
        if job is not None:
            await self._delete_made(auth, job)
            if not ended(job):
                return  # It may make more yet: the staged file marks it for the reconciler.
        if job_id:
            await self._unstage(auth, job_id)

    async def _unstage(self, auth: TokenSource, job_id: str) -> None:
        """The validation file (if any), then the training file, the reconciler's mark."""
        bucket = self._target.bucket
        await self._storage.delete(auth, bucket, self.object_name(job_id, VALIDATION_FILE))
        await self._storage.delete(auth, bucket, self.object_name(job_id))

    async def _delete_made(self, auth: TokenSource, job: Json) -> None:
        for endpoint in endpoints_of(job):
            await self._delete_endpoint(auth, endpoint)
        model = model_of(job)
        if model:
            with _gone_is_fine(), _busy_is_transient(model):
                await self._client.delete_model(auth, model)

    async def _delete_endpoint(self, auth: TokenSource, endpoint: str) -> None:
        """Undeploy each model from the endpoint, then delete it.

        Undeploys and deletes are long-running: one the upstream has not finished yet
        makes it refuse the next step (FAILED_PRECONDITION), which is then tried again
        later, with the caller's backoff, rather than waited for here.
        """
        try:
            found = await self._client.get_endpoint(auth, endpoint)
        except UpstreamNotFound:
            return
        for deployed in found.get("deployedModels", []):
            with _gone_is_fine():
                await self._client.undeploy_model(auth, endpoint, str(deployed["id"]))
        with _gone_is_fine(), _busy_is_transient(endpoint):
            await self._client.delete_endpoint(auth, endpoint)

    async def list_owned(
        self, auth: TokenSource, *, page_size: int, page_token: str = ""
    ) -> OwnedPage:
        """A page of the location's tuning jobs the platform made and has not yet cleaned
        up after: running, or with their staged file still there."""
        jobs, next_token = await self._client.list_tuning_jobs(
            auth, self._parent, page_size=page_size, page_token=page_token
        )
        owned = []
        for job in jobs:
            job_id = self._job_id_of(job)
            if job_id is not None and await self._unfinished(auth, job, job_id):
                owned.append(_owned(job, job_id))
        return OwnedPage(owned, next_token)

    async def _unfinished(self, auth: TokenSource, job: Json, job_id: str) -> bool:
        if not ended(job):
            return True
        name = self.object_name(job_id)
        return await self._storage.exists(auth, self._target.bucket, name)

    async def delete_owned(self, auth: TokenSource, resource: OwnedResource) -> None:
        """Stop the tuning job if it runs, and delete what it made."""
        ref = UpstreamRef(resource.name, resource.name)
        with contextlib.suppress(UpstreamNotFound):
            await self.cancel(auth, ref)
        await self.delete(auth, ref)

    async def _tuning_job(self, auth: TokenSource, ref: UpstreamRef) -> Json:
        """The ref's tuning job: by its name, else by its job's label."""
        if ref.tuned_model:
            return await self._client.get_tuning_job(auth, ref.tuned_model)
        job_id = job_id_of_model(ref.model_id)
        found = None if job_id is None else await self._find(auth, job_id)
        if found is None:
            raise UpstreamNotFound(f"no tuning job has the label {self._label(job_id or '')}")
        return found

    async def _find(self, auth: TokenSource, job_id: str) -> Json | None:
        """The tuning job labelled with `job_id` (the oldest, if somehow several), or None."""
        matches, page_token = [], ""
        for _ in range(MAX_FIND_PAGES):
            jobs, page_token = await self._client.list_tuning_jobs(
                auth,
                self._parent,
                filter_=self._label(job_id),
                page_size=FIND_PAGE_SIZE,
                page_token=page_token,
            )
            matches += [j for j in jobs if self._job_id_of(j) == job_id]
            if not page_token:
                break
        else:
            raise UpstreamRejected(
                f"the listing by {self._label(job_id)} did not end in {MAX_FIND_PAGES} pages: "
                "the upstream seems to ignore the filter; not creating, to make no duplicate"
            )
        if len(matches) > 1:
            log.warning("%d tuning jobs have the label %s", len(matches), self._label(job_id))
        return min(matches, key=lambda j: str(j.get("createTime", "")), default=None)

    def _label(self, job_id: str) -> str:
        return f'labels.{self._label_key}="{job_id}"'

    def _job_id_of(self, job: Json) -> str | None:
        """The platform job a tuning job was made for, by its label; None if not ours."""
        labels = job.get("labels")
        value = labels.get(self._label_key) if isinstance(labels, dict) else None
        return value if isinstance(value, str) and JOB_ID_SHAPE.fullmatch(value) else None

    def _model_id_of(self, job: Json) -> str:
        job_id = self._job_id_of(job)
        return "" if job_id is None else TUNED_MODEL_ID_PREFIX + job_id


def _job_id(model_id: str) -> str:
    job_id = job_id_of_model(model_id)
    if job_id is None:
        raise ValueError(f"not a platform model id: {model_id!r}")
    return job_id


def _tenant_label(tenant: str) -> dict[str, str]:
    return {TENANT_LABEL_KEY: tenant} if tenant else {}


def _owned(job: Json, job_id: str) -> OwnedResource:
    created = parse_time(str(job.get("createTime", ""))) or 0.0
    changed = [parse_time(str(job.get(k, ""))) or 0.0 for k in ("updateTime", "endTime")]
    labels = job.get("labels")
    tenant = labels.get(TENANT_LABEL_KEY, "") if isinstance(labels, dict) else ""
    return OwnedResource(
        TUNING_JOB,
        str(job.get("name", "")),
        job_id,
        created,
        max(created, *changed),
        tenant=str(tenant),
    )


@contextlib.contextmanager
def _gone_is_fine() -> Iterator[None]:
    with contextlib.suppress(UpstreamNotFound):
        yield


@contextlib.contextmanager
def _busy_is_transient(name: str) -> Iterator[None]:
    """A delete refused because the resource is still in use (an undeploy or delete not
    yet finished): to be tried again later, not a failure of the job."""
    try:
        yield
    except UpstreamRejected as exc:
        if exc.status != "FAILED_PRECONDITION" or isinstance(exc, UpstreamNotFound):
            raise
        raise UpstreamRetryable(f"{name} is still in use: {exc.message}") from exc
