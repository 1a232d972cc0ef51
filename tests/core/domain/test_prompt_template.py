"""The prompt template's one rule and its renderer, as the worker sends training inputs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from core.domain import prompt_template
from core.domain.job import Example, Job
from worker.provider import TuningRequest


@pytest.mark.parametrize(
    ("template", "text", "expected"),
    [
        ("question: {input}\nanswer:", "7 + 8", "question: 7 + 8\nanswer:"),
        ('{"q": "{input}"}', "hi", '{"q": "hi"}'),  # other braces are literal
        ("{input}", "as is", "as is"),
        ("", "no template", "no template"),
    ],
)
def test_render_puts_the_input_in_the_placeholders_place(
    template: str, text: str, expected: str
) -> None:
    assert prompt_template.render(template, text) == expected


def test_a_template_must_hold_the_placeholder_once_and_be_bounded() -> None:
    assert prompt_template.violation("q: {input}") is None
    assert "0 times" in str(prompt_template.violation("q: {inputs"))
    assert "2 times" in str(prompt_template.violation("{input}{input}"))
    assert "2,000" in str(prompt_template.violation("{input}" + "." * 1_994))
    assert prompt_template.violation("{input}" + "." * 1_993) is None


async def test_every_training_and_validation_input_goes_upstream_rendered() -> None:
    job = Job(id="j1", tenant="t", base_model="m", prompt_template="Q: {input} A:")
    inline = [Example("1", "2"), Example("3", "4")]
    request = TuningRequest.from_job(job, inline, validation=[Example("5", "6")])
    assert [e.text_input for e in await request.all_examples()] == ["Q: 1 A:", "Q: 3 A:"]
    assert [e.output for e in await request.all_examples()] == ["2", "4"]
    assert [e.text_input for e in request.validation_examples] == ["Q: 5 A:"]

    async def stored() -> AsyncIterator[list[Example]]:
        yield [Example("a", "b")]
        yield [Example("c", "d")]

    from_file = TuningRequest.from_job(job, [], stored=stored)
    batches = [batch async for batch in from_file.example_batches()]
    assert [[e.text_input for e in b] for b in batches] == [["Q: a A:"], ["Q: c A:"]]
