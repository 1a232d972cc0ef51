"""The ``filter`` of ``tuningJobs.list``: comparisons joined by ``AND``.

The grammar for tuning jobs is not documented; the emulator takes what sibling Vertex lists
accept: ``labels.KEY="VALUE"``, ``labels.KEY!="VALUE"``, ``labels.KEY:*`` (has the label),
``state="JOB_STATE_RUNNING"`` and ``state!=…`` (values quoted or bare), joined by ``AND``. Any
other filter is 400 INVALID_ARGUMENT rather than silently matching everything.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from emulator.errors import invalid_argument
from emulator.vertex_training import JOB_STATE_NUMBER

FILTER_MAX_CHARS = 2048
_TERM = re.compile(
    r'\s*(?:labels\.(?P<key>[^\s=!:"]+)|(?P<state>state))\s*'
    r'(?:(?P<has>:\s*\*)|(?P<op>!=|=)\s*(?:"(?P<quoted>[^"]*)"|(?P<bare>[A-Za-z0-9_.\-]+)))\s*'
)
_AND = re.compile(r"\s+AND\s+")


@dataclass(frozen=True)
class JobFacts:
    """What a filter can test: a job's labels and its state name."""

    labels: Mapping[str, str]
    state: str


Predicate = Callable[[JobFacts], bool]


def parse_filter(text: str) -> Predicate:
    """A predicate for ``text`` (empty: everything); 400 if it is not understood."""
    if len(text) > FILTER_MAX_CHARS:
        raise invalid_argument(f"filter is longer than {FILTER_MAX_CHARS} characters.", "filter")
    if not text.strip():
        return lambda facts: True
    terms = [_term(part) for part in _AND.split(text.strip())]
    return lambda facts: all(term(facts) for term in terms)


def _term(text: str) -> Predicate:
    match = _TERM.fullmatch(text)
    if match is None:
        raise invalid_argument(f"Unsupported filter: {text[:100]!r}.", "filter")
    key = match["key"]
    if match["has"]:
        if key is None:
            raise invalid_argument("state cannot be tested with ':*'.", "filter")
        return lambda facts: key in facts.labels
    value = match["quoted"] if match["quoted"] is not None else match["bare"]
    wanted = match["op"] == "="
    if key is None:
        if value not in JOB_STATE_NUMBER:
            raise invalid_argument(f"Unknown job state in filter: {value[:64]!r}.", "filter")
        return lambda facts: (facts.state == value) == wanted
    return lambda facts: (facts.labels.get(key) == value) == wanted
