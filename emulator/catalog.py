"""The base models ``GET /v1beta/models`` lists: ``google.ai.generativelanguage.v1beta.Model``.

The tuning tutorial's first step lists the models and keeps those whose
``supportedGenerationMethods`` include ``createTunedModel``. The default catalog holds the two
base models that accepted tuning through the Gemini API (``gemini-tuning-api.md``: input and
output token limits and the 1.0 / 0.95 / 64 sampling defaults of
``gemini-1.5-flash-001-tuning``), and two ordinary models that do not: a generation model and
an embedding model, which has no sampling defaults at all. Display names, descriptions and the
other models' limits follow the service's published model list; they are illustrative, since
the real catalog changes over time. ``EmulatorConfig.models`` replaces the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass

from emulator.errors import JsonObject

CREATE_TUNED_MODEL = "createTunedModel"


@dataclass(frozen=True)
class BaseModel:
    """One ``Model`` resource.

    Attributes:
        model_id: the ``{model}`` of ``models/{model}``, e.g. ``gemini-1.5-flash-001-tuning``.
        version: the model's version, e.g. ``001``.
        base_model_id: the base model's id; the service leaves it empty for Gemini models.
        display_name: the human-readable name.
        description: a short description.
        input_token_limit: most input tokens per request.
        output_token_limit: most output tokens per answer.
        supported_generation_methods: API method names, camelCase (``generateContent``).
        temperature: default sampling temperature; ``None`` when the model has none.
        max_temperature: the highest temperature the model accepts; ``None`` when unknown.
        top_p: default nucleus sampling; ``None`` when the model has none.
        top_k: default top-k; ``None`` when the model does not use top-k sampling.
    """

    model_id: str
    version: str
    display_name: str
    description: str
    input_token_limit: int
    output_token_limit: int
    supported_generation_methods: tuple[str, ...]
    base_model_id: str = ""
    temperature: float | None = None
    max_temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None

    @property
    def name(self) -> str:
        """The resource name, ``models/{model}``."""
        return f"models/{self.model_id}"

    @property
    def tunable(self) -> bool:
        """Whether the model accepts ``tunedModels.create`` as its base model."""
        return CREATE_TUNED_MODEL in self.supported_generation_methods

    def to_json(self) -> JsonObject:
        """proto3 JSON: empty strings, zeros and empty lists omitted; the ``optional``
        sampling fields present whenever they are set (explicit presence), zero or not."""
        plain: dict[str, object] = {
            "name": self.name,
            "baseModelId": self.base_model_id,
            "version": self.version,
            "displayName": self.display_name,
            "description": self.description,
            "inputTokenLimit": self.input_token_limit,
            "outputTokenLimit": self.output_token_limit,
            "supportedGenerationMethods": list(self.supported_generation_methods),
        }
        body: JsonObject = {key: value for key, value in plain.items() if value}
        optional = {
            "temperature": self.temperature,
            "maxTemperature": self.max_temperature,
            "topP": self.top_p,
            "topK": self.top_k,
        }
        body |= {key: value for key, value in optional.items() if value is not None}
        return body


_TUNABLE_METHODS = ("generateContent", "countTokens", CREATE_TUNED_MODEL)

DEFAULT_MODELS: tuple[BaseModel, ...] = (
    BaseModel(
        model_id="gemini-1.0-pro-001",
        version="001",
        display_name="Gemini 1.0 Pro 001 (Tuning)",
        description="The original Gemini 1.0 Pro model version that supports tuning.",
        input_token_limit=30720,
        output_token_limit=2048,
        supported_generation_methods=_TUNABLE_METHODS,
        temperature=0.9,
        top_p=1.0,
    ),
    BaseModel(
        model_id="gemini-1.5-flash",
        version="001",
        display_name="Gemini 1.5 Flash",
        description="Fast and versatile multimodal model for scaling across diverse tasks.",
        input_token_limit=1_000_000,
        output_token_limit=8192,
        supported_generation_methods=("generateContent", "countTokens"),
        temperature=1.0,
        max_temperature=2.0,
        top_p=0.95,
        top_k=64,
    ),
    BaseModel(
        model_id="gemini-1.5-flash-001-tuning",
        version="001",
        display_name="Gemini 1.5 Flash 001 Tuning",
        description="Version of Gemini 1.5 Flash that supports tuning.",
        input_token_limit=16384,
        output_token_limit=8192,
        supported_generation_methods=_TUNABLE_METHODS,
        temperature=1.0,
        max_temperature=2.0,
        top_p=0.95,
        top_k=64,
    ),
    BaseModel(
        model_id="text-embedding-004",
        version="004",
        display_name="Text Embedding 004",
        description="Obtain a distributed representation of a text.",
        input_token_limit=2048,
        output_token_limit=1,
        supported_generation_methods=("embedContent",),
    ),
)
