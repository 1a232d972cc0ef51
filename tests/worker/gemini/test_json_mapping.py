"""Reading the Gemini API's create Operation: the raw snapshots a poll slices out of the
bytes map to what a full parse gives, and an answer of the wrong shape is a ValueError."""

from __future__ import annotations

import orjson
import pytest

from core.domain.upstream import UpstreamRef, UpstreamState
from worker.gemini.json_mapping import RawSnapshot, operation_from_json, status_from_operation

REF = UpstreamRef("tunedModels/tj-a", "tunedModels/tj-a/operations/op-1")


def operation(steps: int, total: int = 20, **fields: object) -> bytes:
    # As the upstream writes proto3 JSON: int64 as strings, zeros left out.
    snapshots = [
        {"step": n, "meanLoss": 1.0 / n, "computeTime": f"2026-12-01T00:00:{n:02d}Z"}
        | ({"epoch": str(n // 10)} if n >= 10 else {})
        for n in range(1, steps + 1)
    ]
    metadata = {
        "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.CreateTunedModelMetadata",
        "tunedModel": REF.tuned_model,
        "totalSteps": str(total),
        "completedSteps": str(steps),
        "completedPercent": 100 * steps / total,
        "snapshots": snapshots,
    }
    return orjson.dumps({"name": REF.operation, "metadata": metadata, **fields})


def test_raw_snapshots_map_as_parsed_ones_do() -> None:
    content = operation(12)
    raw = operation_from_json(content)
    assert all(isinstance(s, RawSnapshot) for s in raw["metadata"]["snapshots"])
    parsed = status_from_operation(orjson.loads(content), REF)
    assert status_from_operation(raw, REF) == parsed
    assert parsed.progress.total_steps == 20 and parsed.snapshots[-1].epoch == 1
    # A later poll reuses what the job holds and reads only the new steps.
    later = operation_from_json(operation(15))
    status = status_from_operation(later, REF, parsed.snapshots)
    assert status.snapshots == status_from_operation(orjson.loads(operation(15)), REF).snapshots
    assert list(status.snapshots[:12]) == list(parsed.snapshots)


def test_a_finished_operation_reads_its_response_or_its_error() -> None:
    task = {"startTime": "2026-12-01T00:00:00Z", "completeTime": "2026-12-01T00:01:00Z"}
    response = {"name": REF.tuned_model, "state": "ACTIVE", "tuningTask": task}
    done = status_from_operation(
        operation_from_json(operation(20, done=True, response=response)), REF
    )
    assert done.state == UpstreamState.SUCCEEDED and done.end_time is not None
    error = {"code": 3, "message": "the dataset has no examples"}
    failed = status_from_operation(operation_from_json(operation(3, done=True, error=error)), REF)
    assert failed.state == UpstreamState.FAILED and failed.error is not None
    assert failed.error.code == 3 and "no examples" in failed.error.message


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b"[1, 2]",
        b'{"metadata": []}',
        b'{"metadata": {"snapshots": {"step": 1}}}',
        b'{"done": "yes"}',
    ],
)
def test_an_answer_of_the_wrong_shape_is_a_value_error(content: bytes) -> None:
    with pytest.raises(ValueError):
        operation_from_json(content)
