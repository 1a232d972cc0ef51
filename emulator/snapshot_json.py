"""A tuned model's TuningSnapshots as JSON, each step rendered once.

Every answer about a training model repeats the snapshot of every completed step, and a
step's snapshot never changes (``training.snapshot`` is a function of the plan and the
step alone). Computed and rendered afresh, a model 1,000 steps in cost the emulator
16 ms of CPU per answer on a shared 2-core machine (its losses are hashed, its times
formatted), so a benchmark polling 1,000 such models at 100 requests a second measured
an emulator that could not keep up. So each model keeps the JSON text of the steps it has
rendered (about 100 bytes a step), and an answer renders only the steps completed since
the last one; the answers carry the same JSON as before (now written compactly by orjson).
"""

from __future__ import annotations

from array import array

import orjson

from emulator.errors import JsonObject
from emulator.protojson import timestamp
from emulator.training import Snapshot, TrainingPlan, snapshot


class RenderedSnapshots:
    """The JSON text of a model's snapshots, rendered in step order as they are asked for."""

    def __init__(self, plan: TrainingPlan) -> None:
        self._plan = plan
        self._text = bytearray()
        self._ends = array("Q")  # where each step's object ends in the text

    def upto(self, steps: int) -> orjson.Fragment | None:
        """The JSON array of the snapshots of steps 1 to ``steps``, to embed in an answer
        (``emulator.handling.ok`` writes it with orjson); None for none (proto3 omits an
        empty list)."""
        for step in range(len(self._ends) + 1, steps + 1):
            if self._ends:
                self._text += b","
            self._text += orjson.dumps(snapshot_body(snapshot(self._plan, step)))
            self._ends.append(len(self._text))
        if steps <= 0:
            return None
        return orjson.Fragment(b"[" + self._text[: self._ends[steps - 1]] + b"]")


def snapshot_body(item: Snapshot) -> JsonObject:
    """One TuningSnapshot; ``epoch`` is omitted when zero."""
    body: JsonObject = {"step": item.step}
    if item.epoch:
        body["epoch"] = item.epoch
    body["meanLoss"] = item.mean_loss
    body["computeTime"] = timestamp(item.compute_time_s)
    return body
