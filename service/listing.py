"""ListTuningJobs: filters (a small AIP-160 subset) and page tokens (AIP-158).

A page walks the tenant's index newest first from a cursor, so its cost depends on the
page size, never on how many jobs the tenant has. A filter that matches rarely stops
after MAX_SCAN index entries and answers a short page with a token to go on, as
AIP-158 allows.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass

from core.domain.job import Job
from core.domain.states import JobState
from core.errors import FieldViolation, InvalidArgument, echo
from core.redis.job_store import JobStore

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
MAX_SCAN = 5000

_TERM = re.compile(
    r"""\s*(?:
        state\s*=\s*(?P<state>[A-Z_]+|\(\s*[A-Z_]+(?:\s+OR\s+[A-Z_]+)*\s*\))
      | labels\.(?P<key>[a-z][a-z0-9_-]*)\s*=\s*(?P<value>"[^"]*"|[a-z0-9_-]+)
    )\s*""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class JobFilter:
    states: frozenset[JobState] | None = None
    labels: tuple[tuple[str, str], ...] = ()

    def matches(self, job: Job) -> bool:
        if job.deleted or (self.states is not None and job.state not in self.states):
            return False
        return all(job.labels.get(k) == v for k, v in self.labels)


def parse_filter(text: str) -> JobFilter:
    """Parse `state = RUNNING AND labels.team = "x"`; INVALID_ARGUMENT on anything else."""
    if not text.strip():
        return JobFilter()
    states: set[JobState] | None = None
    labels: list[tuple[str, str]] = []
    for term in re.split(r"\s+AND\s+", text.strip()):
        match = _TERM.fullmatch(term)
        if match is None:
            raise _bad_filter(f"cannot read {echo(term)}")
        if match["state"]:
            names = set(re.findall(r"[A-Z_]+", match["state"])) - {"OR"}
            chosen = {_state(n) for n in names}
            states = chosen if states is None else states & chosen
        else:
            labels.append((match["key"], match["value"].strip('"')))
    return JobFilter(None if states is None else frozenset(states), tuple(labels))


def _state(name: str) -> JobState:
    try:
        return JobState(name)
    except ValueError:
        raise _bad_filter(f"unknown state {name}") from None


def _bad_filter(why: str) -> InvalidArgument:
    hint = 'use terms like state = RUNNING, state = (QUEUED OR RUNNING), labels.team = "x"'
    return InvalidArgument(
        f"invalid filter: {why}", [FieldViolation("filter", f"{why}; {hint} joined by AND")]
    )


def _fingerprint(filter_text: str) -> str:
    return hashlib.sha256(filter_text.encode()).hexdigest()[:16]


def encode_token(seq: int, filter_text: str) -> str:
    raw = json.dumps({"s": seq, "f": _fingerprint(filter_text)}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_token(token: str, filter_text: str) -> int | None:
    """The cursor in `token`; INVALID_ARGUMENT if it is not ours or the filter changed."""
    if not token:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        seq, fingerprint = int(data["s"]), str(data["f"])
    except (ValueError, KeyError, TypeError):
        raise _bad_token("is not a token this service issued") from None
    if fingerprint != _fingerprint(filter_text):
        raise _bad_token("was issued for a different filter")
    return seq


def _bad_token(why: str) -> InvalidArgument:
    return InvalidArgument(f"invalid page_token: it {why}", [FieldViolation("page_token", why)])


def page_size_of(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument(
            "page_size must not be negative", [FieldViolation("page_size", "must be >= 0")]
        )
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


async def list_page(
    store: JobStore, tenant: str, *, page_size: int, cursor: int | None, where: JobFilter
) -> tuple[list[Job], int | None]:
    """One page of matching jobs and the cursor to continue from (None: no more)."""
    jobs: list[Job] = []
    budget = MAX_SCAN
    while budget > 0:
        want = min(budget, page_size - len(jobs) + 1)
        batch = await store.page(tenant, before_seq=cursor, count=want)
        budget -= len(batch)
        for seq, job in batch:
            if len(jobs) == page_size:
                return jobs, cursor
            cursor = seq
            if job is not None and where.matches(job):
                jobs.append(job)
        if len(batch) < want:
            return jobs, None
    return jobs, cursor
