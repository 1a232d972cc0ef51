"""The base models the facade offers a tenant, and how a create's base model is read.

A tenant on the Gemini API provider tunes the Gemini API's models, named as that API
names them (`TUNING_BASE_MODELS`, e.g. `models/gemini-1.5-flash-001-tuning`): a create's
`base_model` is taken as it is, and the TuningService's validation judges it.

A tenant on Vertex AI tunes `TUNING_VERTEX_BASE_MODELS` (bare ids, `gemini-2.5-flash`).
Google's surface names a model `models/{id}`, so ListModels offers them as
`models/gemini-2.5-flash`, and a create may name one so; code written for the old
surface names its models (`models/gemini-1.5-flash-001-tuning`), which
`TUNING_FACADE_BASE_MODELS` maps onto a Vertex AI one (`old=new`). Any other name is
INVALID_ARGUMENT naming `tuned_model.base_model` and listing every accepted name.

ListModels and GetModel answer the tenant's provider's tunable models, less those
retired (core.domain.catalogue: no new job may use them), each supporting
`createTunedModel` and `generateContent`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.ai import generativelanguage_v1beta as glm

from core.domain.providers import ProviderKind
from core.errors import FieldViolation, InvalidArgument, NotFound, echo
from core.runtime.settings import Settings
from service.gemini_facade.models import MODEL_PREFIX, model_name_of
from service.validation import tunable_models

Model: Any = glm.Model.pb()
GENERATION_METHODS = ("generateContent", "createTunedModel")
MAX_MODEL_NAME_CHARS = 128
BASE_MODEL_FIELD = "tuned_model.base_model"


class BaseModels:
    """The tunable models per provider kind, and the Vertex AI tenants' name table."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._table = settings.facade_base_model_table()
        self._catalogue = settings.catalogue()

    def offered(self, kind: ProviderKind, now_s: float) -> list[str]:
        """`models/{id}` of each model a tenant of `kind` may tune now."""
        models = tunable_models(self._settings, kind)
        return [model_name_of(m) for m in models if self._catalogue.retired_on(m, now_s) is None]

    def model(self, kind: ProviderKind, name: str, now_s: float) -> Any:
        """GetModel: the Model `name` names, if a tenant of `kind` may tune it."""
        if len(name) > MAX_MODEL_NAME_CHARS or not name.startswith(MODEL_PREFIX):
            raise InvalidArgument(
                f"{echo(name)} is not a model name",
                [FieldViolation("name", "must be models/{model}")],
            )
        if name not in self.offered(kind, now_s):
            raise NotFound(f"{name} not found")
        return model_message(name)

    def for_create(self, kind: ProviderKind, base_model: str) -> str:
        """The base model a create names, as the tenant's provider names it."""
        if kind is not ProviderKind.VERTEX:
            return base_model
        vertex: Mapping[str, str] = {
            **self._table,
            **{MODEL_PREFIX + m: m for m in self._settings.vertex_base_models},
        }
        found = vertex.get(base_model)
        if found is None:
            raise InvalidArgument(
                f"{echo(base_model)} is not a base model this tenant can tune",
                [
                    FieldViolation(
                        BASE_MODEL_FIELD,
                        f"not tunable on the vertex provider; use one of: {', '.join(vertex)}",
                    )
                ],
            )
        return found


def model_message(name: str) -> Any:
    """A base model as ListModels answers it (the platform knows its name, nothing more:
    token limits and sampling defaults are left unset)."""
    model_id = name.removeprefix(MODEL_PREFIX)
    return Model(
        name=name,
        base_model_id=model_id,
        display_name=model_id,
        description=f"{model_id}, tunable on this platform",
        supported_generation_methods=GENERATION_METHODS,
    )
