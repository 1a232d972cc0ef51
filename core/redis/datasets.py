"""A stored dataset's file, read by workers (a job's `validation_dataset`, read when the
job is submitted).

The dataset hash (`Keys.dataset`) is written whole by the DATASET_SAVE script
(core/redis/scripts.py); its `doc` holds the record, with the file under FILE_FIELD.
"""

from __future__ import annotations

import json

from core.domain.job import TrainingFile
from core.redis.client import Redis, translated_errors
from core.redis.keys import Keys

DOC_FIELD = "doc"
FILE_FIELD = "file"


async def dataset_file(
    redis: Redis, keys: Keys, tenant: str, dataset_id: str
) -> TrainingFile | None:
    """The dataset's file; None if the dataset is gone (or from before files)."""
    with translated_errors():
        doc = await redis.hget(keys.dataset(tenant, dataset_id), DOC_FIELD)
    found = None if doc is None else json.loads(doc).get(FILE_FIELD)
    return None if found is None else TrainingFile(**found)
