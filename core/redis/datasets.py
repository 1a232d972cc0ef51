"""A stored dataset's examples, read by the API (a job naming `dataset`) and by workers (a
job's `validation_dataset`, read when the job is submitted).

The dataset hash (`Keys.dataset`) is written whole by the DATASET_SAVE script
(core/redis/scripts.py), its examples under EXAMPLES_FIELD.
"""

from __future__ import annotations

from core.redis.client import Redis, translated_errors
from core.redis.keys import Keys

EXAMPLES_FIELD = "examples"


async def dataset_examples(redis: Redis, keys: Keys, tenant: str, dataset_id: str) -> bytes | None:
    """The dataset's encoded examples (core.domain.job.decode_examples); None if it is gone."""
    with translated_errors():
        raw = await redis.hget(keys.dataset(tenant, dataset_id), EXAMPLES_FIELD)
    return None if raw is None else bytes(raw)  # type: ignore[arg-type]
