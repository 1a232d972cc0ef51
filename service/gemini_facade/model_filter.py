"""ListTunedModels' `filter`, as Google's surface defines it, over a tenant's jobs.

Google's filter is free text over the display name and description, plus `owner:me`
and `readers:everyone`. Here:

- the filter is split on whitespace into terms; every term must hold (AND);
- `owner:me` holds for every model listed (a tenant lists only its own);
- `readers:everyone` holds for none (no tuned model here is shared with anyone);
- any other term (`word`, or `"quoted words"` kept together) holds when the display
  name or the description contains it, case folded;
- at most `Settings.max_filter_chars` characters (checked before it is read) and
  service.listing.MAX_FILTER_TERMS terms; anything else is INVALID_ARGUMENT naming
  `filter`.

It is a JobFilter (service.listing), so the TuningService's paging serves it: deleted
jobs are never listed, and a rare match ends a page short with a token to go on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.domain.job import Job
from core.errors import FieldViolation, InvalidArgument
from service.listing import MAX_FILTER_TERMS, JobFilter

OWNER_ME = "owner:me"
READERS_EVERYONE = "readers:everyone"
_TERM = re.compile(r'"([^"]*)"|(\S+)')


@dataclass(frozen=True)
class TextFilter(JobFilter):
    """Jobs whose display name or description contain every word; or none at all."""

    words: tuple[str, ...] = ()
    nothing: bool = False
    """A term no model can match (`readers:everyone`) was given."""

    def matches(self, job: Job) -> bool:
        if self.nothing or not super().matches(job):
            return False
        text = f"{job.display_name}\n{job.description}".casefold()
        return all(word in text for word in self.words)


def parse_model_filter(text: str, *, max_chars: int) -> TextFilter:
    """The filter `text` says; INVALID_ARGUMENT if it is too long or has too many terms."""
    if len(text) > max_chars:
        raise _bad_filter(f"{len(text)} characters is more than the {max_chars} allowed")
    if text.count('"') % 2:
        raise _bad_filter("opens a quoted string it never closes")
    terms = [m[1] if m[1] is not None else m[2] for m in _TERM.finditer(text)]
    terms = [t for t in terms if t.strip()]
    if len(terms) > MAX_FILTER_TERMS:
        raise _bad_filter(f"has more than {MAX_FILTER_TERMS} terms")
    words = tuple(t.casefold() for t in terms if t not in (OWNER_ME, READERS_EVERYONE))
    return TextFilter(words=words, nothing=READERS_EVERYONE in terms)


def _bad_filter(why: str) -> InvalidArgument:
    hint = f'free text over display name and description, "quoted phrases", {OWNER_ME}'
    return InvalidArgument(f"invalid filter: {why}", [FieldViolation("filter", f"{why}; {hint}")])
