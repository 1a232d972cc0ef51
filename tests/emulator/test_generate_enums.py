"""The generation enums the emulator numbers are those of Google's installed protos."""

from __future__ import annotations

from enum import IntEnum

import pytest
from google.ai import generativelanguage_v1beta as glm
from google.cloud import aiplatform_v1 as aip

from emulator.generate_schema import (
    GEMINI_API,
    HARM_BLOCK_METHODS,
    HARM_THRESHOLDS,
    VERTEX_AI,
    Surface,
)


def numbered(enum: type[IntEnum]) -> tuple[str, ...]:
    """The enum's names in the order of their numbers, which run from 0 without a gap."""
    members = sorted(enum, key=lambda member: member.value)
    assert [member.value for member in members] == list(range(len(members)))
    return tuple(member.name for member in members)


@pytest.mark.parametrize(
    ("surface", "categories"),
    [(GEMINI_API, glm.HarmCategory), (VERTEX_AI, aip.HarmCategory)],
)
def test_harm_categories_are_numbered_as_the_protos(
    surface: Surface, categories: type[IntEnum]
) -> None:
    assert numbered(categories) == surface.categories


def test_thresholds_and_methods_are_numbered_as_the_protos() -> None:
    assert numbered(glm.SafetySetting.HarmBlockThreshold) == HARM_THRESHOLDS
    assert numbered(aip.SafetySetting.HarmBlockThreshold) == HARM_THRESHOLDS
    assert numbered(aip.SafetySetting.HarmBlockMethod) == HARM_BLOCK_METHODS


@pytest.mark.parametrize(
    ("surface", "finish", "block", "probability"),
    [
        (
            GEMINI_API,
            glm.Candidate.FinishReason,
            glm.GenerateContentResponse.PromptFeedback.BlockReason,
            glm.SafetyRating.HarmProbability,
        ),
        (
            VERTEX_AI,
            aip.Candidate.FinishReason,
            aip.GenerateContentResponse.PromptFeedback.BlockedReason,
            aip.SafetyRating.HarmProbability,
        ),
    ],
)
def test_answered_enums_are_numbered_as_the_protos(
    surface: Surface,
    finish: type[IntEnum],
    block: type[IntEnum],
    probability: type[IntEnum],
) -> None:
    answer = {
        "finishReason": ["STOP", "MAX_TOKENS", "SAFETY"],
        "blockReason": ["SAFETY"],
        "probability": ["NEGLIGIBLE", "HIGH"],
    }

    encoded = surface.with_int_enums(answer)

    assert encoded == {
        "finishReason": [finish.__members__[name] for name in answer["finishReason"]],
        "blockReason": [block.__members__["SAFETY"]],
        "probability": [probability.__members__[name] for name in answer["probability"]],
    }


def test_vertex_severity_is_numbered_as_the_proto() -> None:
    severities = ["HARM_SEVERITY_NEGLIGIBLE", "HARM_SEVERITY_HIGH"]
    members = aip.SafetyRating.HarmSeverity.__members__

    encoded = VERTEX_AI.with_int_enums({"severity": severities})

    assert encoded["severity"] == [members[name] for name in severities]
