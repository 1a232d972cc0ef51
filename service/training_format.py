"""A Generate call in its model's training format: the job's prompt template and system
instruction applied to the caller's request (core.domain.prompt_template says why).

Each user turn is rendered through the template: the template's text before `{input}` goes
before the turn's first part, the text after it after the last part, so a turn of several
parts reads as their concatenation would, rendered. Every user turn is, not only the last:
in a conversation sent turn by turn, each earlier turn was the last once, and was sent
rendered then. Model turns are the model's own words and stay as they are.

The job's system instruction comes first in the request's, as a part of its own, and the
caller's parts follow: a caller adds to the instruction the model was tuned with, and
cannot drop it by accident. `skip_training_format` sends the request exactly as given.

Apart from the format, the tuned model's default sampling (`Job.sampling`: temperature,
top_p, top_k, given at its create through the Gemini API facade) fills what the caller's
generation config leaves unset, `skip_training_format` or not: they are the model's own
defaults, as the Gemini API applies a tuned model's, not part of its prompt format.
"""

from __future__ import annotations

from typing import NamedTuple

from core.domain import prompt_template
from core.domain.job import Job, Sampling
from tuning.v1 import generation_service_pb2 as gen

USER = "user"


class Formatted(NamedTuple):
    """The request to send, and what of the job's format was applied to it."""

    request: gen.GenerateContentRequest
    template_applied: bool = False
    instruction_applied: bool = False


def formatted(job: Job, request: gen.GenerateContentRequest) -> Formatted:
    """`request` in `job`'s training format (a copy; `request` itself if nothing applies)."""
    template = job.prompt_template and not request.skip_training_format
    instruction = job.system_instruction and not request.skip_training_format
    defaults = _unset_defaults(job.sampling, request.generation_config)
    if not (template or instruction or defaults):
        return Formatted(request)
    out = gen.GenerateContentRequest()
    out.CopyFrom(request)
    for field, value in defaults.items():
        setattr(out.generation_config, field, value)
    if template:
        _render_user_turns(out, prompt_template.parsed(job.prompt_template))
    if instruction:
        _put_instruction_first(out, job.system_instruction)
    return Formatted(out, bool(template), bool(instruction))


def _render_user_turns(request: gen.GenerateContentRequest, form: prompt_template.Template) -> None:
    for content in request.contents:
        if content.role == USER and content.parts:  # the bounds saw one part at least
            first, last = content.parts[0], content.parts[-1]
            first.text = form.prefix + first.text
            last.text = last.text + form.suffix


def _put_instruction_first(request: gen.GenerateContentRequest, text: str) -> None:
    callers = list(request.system_instruction.parts)
    del request.system_instruction.parts[:]
    request.system_instruction.parts.add(text=text)
    request.system_instruction.parts.extend(callers)


def _unset_defaults(
    sampling: Sampling | None, config: gen.GenerationConfig
) -> dict[str, float | int]:
    """The tuned model's defaults for the fields `config` leaves unset."""
    if sampling is None:
        return {}
    already = {d.name for d, _ in config.ListFields()}
    return {f: v for f, v in sampling.given().items() if f not in already}
