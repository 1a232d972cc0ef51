"""A job's prompt template: the format its training inputs were given in, applied again to
every prompt the tuned model is called with.

The tuning guide's advice is that production prompts be formatted like the training
examples; a template makes that a rule instead of a hope. It is text holding the
placeholder `{input}` exactly once, say `question: {input}\\nanswer briefly.`, and nothing
else is special in it: braces elsewhere are literal (a template may hold JSON), so there is
no escaping to get wrong. Rendering puts the input in the placeholder's place.

The one renderer serves both sides: the worker sends each training example's `text_input`
rendered (worker.provider.TuningRequest), and GenerateContent renders each user turn
(service.training_format), so the model is called in exactly the format it learned.
"""

from __future__ import annotations

from typing import NamedTuple

PLACEHOLDER = "{input}"
MAX_PROMPT_TEMPLATE_CHARS = 2_000


class Template(NamedTuple):
    """A template split at its placeholder."""

    prefix: str
    suffix: str

    def render(self, text: str) -> str:
        return f"{self.prefix}{text}{self.suffix}"


def parsed(template: str) -> Template:
    """The template split at its placeholder (it is valid: `violation` said so)."""
    prefix, _, suffix = template.partition(PLACEHOLDER)
    return Template(prefix, suffix)


def violation(template: str) -> str | None:
    """What is wrong with `template`, or None."""
    if len(template) > MAX_PROMPT_TEMPLATE_CHARS:
        return f"at most {MAX_PROMPT_TEMPLATE_CHARS:,} characters"
    count = template.count(PLACEHOLDER)
    if count != 1:
        return f"must hold {PLACEHOLDER} exactly once (it holds it {count} times)"
    return None


def render(template: str, text: str) -> str:
    """`text` in the template's format; `text` itself if there is no template."""
    return parsed(template).render(text) if template else text
