"""The base models Vertex AI supervised tuning accepts, with their adapter sizes and retirement.

``tuningJobs.create`` takes a bare model id as ``baseModel`` (``gemini-2.5-flash``). The default
catalogue is the late-2026 list of ``vertex-tuning-api.md``: Gemini 2.5 Pro, Flash and
Flash-Lite, 2.0 Flash and Flash-Lite, and 3.x Flash / Flash-Lite models. Gemini 2.0 Flash was
discontinued on 2026-06-01; the 2.5 models are being retired from late 2026 into 2027, on dates
not yet published, so they have none here. Adapter sizes per model and the 3.x ids are
illustrative. ``EmulatorConfig.vertex_models`` replaces the catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

# SupervisedHyperParameters.AdapterSize: names and their proto numbers.
ADAPTER_SIZE_NUMBER = {
    "ADAPTER_SIZE_UNSPECIFIED": 0,
    "ADAPTER_SIZE_ONE": 1,
    "ADAPTER_SIZE_TWO": 6,
    "ADAPTER_SIZE_FOUR": 2,
    "ADAPTER_SIZE_EIGHT": 3,
    "ADAPTER_SIZE_SIXTEEN": 4,
    "ADAPTER_SIZE_THIRTY_TWO": 5,
}
ADAPTER_SIZE_NAME = {number: name for name, number in ADAPTER_SIZE_NUMBER.items()}

_UP_TO_EIGHT = ("ADAPTER_SIZE_ONE", "ADAPTER_SIZE_TWO", "ADAPTER_SIZE_FOUR", "ADAPTER_SIZE_EIGHT")
_UP_TO_SIXTEEN = (*_UP_TO_EIGHT, "ADAPTER_SIZE_SIXTEEN")

# Input plus output tokens per training example (Gemini 2.5 Flash / Flash-Lite / Pro).
MAX_EXAMPLE_TOKENS = 131_072


@dataclass(frozen=True)
class VertexBaseModel:
    """One tunable base model.

    Attributes:
        model_id: the ``baseModel`` value, e.g. ``gemini-2.5-flash``.
        adapter_sizes: the ``adapterSize`` names it accepts.
        retired_on: the day from which it can no longer be tuned (UTC); ``None``: not set.
        max_example_tokens: input plus output tokens per example; longer ones are dropped.
    """

    model_id: str
    adapter_sizes: tuple[str, ...] = _UP_TO_SIXTEEN
    retired_on: date | None = None
    max_example_tokens: int = MAX_EXAMPLE_TOKENS

    def retired_at(self, now_s: float) -> bool:
        """Whether the model is retired at ``now_s`` (epoch seconds)."""
        today = datetime.fromtimestamp(now_s, tz=UTC).date()
        return self.retired_on is not None and today >= self.retired_on


DEFAULT_VERTEX_MODELS: tuple[VertexBaseModel, ...] = (
    VertexBaseModel("gemini-2.5-pro", adapter_sizes=_UP_TO_EIGHT),
    VertexBaseModel("gemini-2.5-flash"),
    VertexBaseModel("gemini-2.5-flash-lite"),
    VertexBaseModel("gemini-2.0-flash-001", retired_on=date(2026, 6, 1)),
    VertexBaseModel("gemini-2.0-flash-lite-001"),
    VertexBaseModel("gemini-3-flash-preview"),
    VertexBaseModel("gemini-3.1-flash-lite"),
    VertexBaseModel("gemini-3.5-flash"),
    VertexBaseModel("gemini-3.5-flash-lite"),
)
