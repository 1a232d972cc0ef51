"""A tuned model's default sampling in the request Generate sends (service.training_format):
it fills what the caller's generation config leaves unset, and nothing else."""

from __future__ import annotations

import pytest

from core.domain.job import Job, Sampling
from service.training_format import formatted
from tuning.v1 import generation_service_pb2 as gen

DEFAULTS = Sampling(temperature=0.25, top_k=8)


def job(sampling: Sampling | None = DEFAULTS, prompt_template: str = "") -> Job:
    return Job(
        id="j1", tenant="team-a", base_model="m", sampling=sampling, prompt_template=prompt_template
    )


def ask(
    config: gen.GenerationConfig | None = None, skip: bool = False
) -> gen.GenerateContentRequest:
    request = gen.GenerateContentRequest(
        model="tuningJobs/j1",
        contents=[gen.Content(role="user", parts=[gen.Part(text="2 + 2")])],
        skip_training_format=skip,
    )
    if config is not None:
        request.generation_config.CopyFrom(config)
    return request


def test_the_models_defaults_fill_an_unset_config() -> None:
    request = ask()
    sent = formatted(job(), request).request
    assert sent.generation_config.temperature == pytest.approx(0.25)
    assert sent.generation_config.top_k == 8
    assert not sent.generation_config.HasField("top_p")  # no default given: the upstream's
    assert not request.HasField("generation_config")  # the caller's request is not changed


def test_what_the_caller_sets_wins_and_the_rest_is_filled() -> None:
    config = gen.GenerationConfig(temperature=0.0, max_output_tokens=5)
    sent = formatted(job(), ask(config)).request.generation_config
    assert sent.HasField("temperature") and sent.temperature == 0.0  # an explicit zero kept
    assert sent.top_k == 8 and sent.max_output_tokens == 5


def test_the_defaults_apply_when_the_training_format_is_skipped() -> None:
    result = formatted(job(prompt_template="Q: {input}"), ask(skip=True))
    assert result.request.generation_config.top_k == 8
    assert result.request.contents[0].parts[0].text == "2 + 2"
    assert not result.template_applied


def test_a_model_without_defaults_sends_the_request_as_it_is() -> None:
    request = ask()
    assert formatted(job(sampling=None), request).request is request
