"""What the worker reads of datasets' files: a job's examples, a validation dataset's,
and the files it lets go of (core.dataset_files holds the files' rules)."""

from __future__ import annotations

from core.dataset_files import DatasetFiles
from core.domain.job import Example, TrainingFile
from core.errors import Reason, UpstreamRejected
from core.redis.client import Redis
from core.redis.datasets import dataset_file
from core.redis.keys import Keys
from core.redis.storage import TenantStorage
from worker.provider import ExampleBatches


class TrainingData:
    """Jobs' and datasets' files, through the platform's bucket (None: none configured)."""

    def __init__(self, redis: Redis, keys: Keys, files: DatasetFiles | None) -> None:
        self._redis = redis
        self._keys = keys
        self._files = files
        self._storage = TenantStorage(redis, keys)

    def batches(self, file: TrainingFile) -> ExampleBatches:
        """The file's examples as a provider reads them, a batch at a time."""
        files = self._require()
        return lambda: files.example_batches(file)

    async def validation_examples(self, tenant: str, dataset_id: str) -> list[Example] | None:
        """The dataset's examples (at most 5,000: the API checked); None if it is gone."""
        file = await dataset_file(self._redis, self._keys, tenant, dataset_id)
        return None if file is None else await self._require().examples(file)

    async def discard(self, tenant: str, file: TrainingFile | None) -> None:
        """Nothing needs `file` any more: it joins the tenant's discarded files."""
        if file is not None:
            await self._storage.discard_file(tenant, file.uri)

    def _require(self) -> DatasetFiles:
        if self._files is None:
            raise UpstreamRejected(
                "this worker has no dataset storage (TUNING_DATASET_STORAGE), and the job's "
                "examples are in a dataset's file",
                reason=Reason.DATA_LOST,
            )
        return self._files
