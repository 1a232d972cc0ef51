"""ListTuningJobs: filters (a small AIP-160 subset) and page tokens (AIP-158).

A page walks the tenant's index newest first from a cursor, so its cost depends on the
page size, never on how many jobs the tenant has. A filter that matches rarely stops
after MAX_SCAN index entries and answers a short page with a token to go on, as
AIP-158 allows.

Filters are read by a tokenizer and a recursive-descent parser in one pass, so their
cost is linear in their length; the length itself is bounded first
(`Settings.max_filter_chars`), then the number of terms (MAX_FILTER_TERMS). The language:
`state = X`, `state = (A OR B)`, `labels.k = "v"` and `labels.k = v`, and
`base_model_retiring = true` (or `false`: core.domain.catalogue decides, as of the call),
joined by AND (with spaces around it).

Page tokens are opaque and authenticated. A token is the cursor (the index sequence to
continue before) and an HMAC-SHA256 over the tenant, the filter's digest and the cursor,
so a token is good only for the tenant and the filter it was issued for, and a caller
cannot forge or alter one. The key is a random 32-byte secret that all API replicas
share through Redis (core.redis.page_token_key). A token's shape and length are checked
before anything is decoded; every bad token is INVALID_ARGUMENT naming `page_token`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass, replace

from core.domain.job import Job
from core.domain.states import JobState
from core.errors import FieldViolation, InvalidArgument, echo
from core.redis.job_store import JobStore
from core.redis.page_token_key import PageTokenKey

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
MAX_SCAN = 5000
MAX_FILTER_TERMS = 32
"""Most terms joined by AND in one filter, and most states in one `(A OR B ...)`."""
MAX_PAGE_TOKEN_CHARS = 64
"""Longest page token read (the tokens this service issues have 55 characters)."""

# One alternative per token kind, each starting with a different character class, and
# none followed by anything that could fail: a match never backtracks beyond the token
# it reads, so scanning a filter is linear in its length.
_TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<punct>[=()])
      | (?P<string>"[^"]*")
      | (?P<word>[A-Za-z0-9_.-]+)
      | (?P<other>.)""",
    re.VERBOSE | re.DOTALL,
)
_STATE_NAME = re.compile(r"[A-Z_]+")
_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]*")
_LABEL_VALUE = re.compile(r"[a-z0-9_-]+")
_LABEL_PREFIX = "labels."
_RETIRING = "base_model_retiring"
_BOOLEANS = {"true": True, "false": False}


@dataclass(frozen=True)
class JobFilter:
    states: frozenset[JobState] | None = None
    labels: tuple[tuple[str, str], ...] = ()
    retiring: bool | None = None
    """`base_model_retiring = true|false`; None: not asked."""
    retiring_models: frozenset[str] = frozenset()
    """The base models retiring at the time of the call (`with_retiring`)."""

    def with_retiring(self, models: frozenset[str]) -> JobFilter:
        """This filter with the base models that are retiring now (the caller's clock)."""
        return replace(self, retiring_models=models)

    def matches(self, job: Job) -> bool:
        if job.deleted or (self.states is not None and job.state not in self.states):
            return False
        if self.retiring is not None and (job.base_model in self.retiring_models) != self.retiring:
            return False
        return all(job.labels.get(k) == v for k, v in self.labels)


def parse_filter(text: str, *, max_chars: int) -> JobFilter:
    """Parse `state = RUNNING AND labels.team = "x"`; INVALID_ARGUMENT on anything else.

    The length is checked before anything is read.
    """
    if len(text) > max_chars:
        raise _bad_filter(f"{len(text)} characters is more than the {max_chars} allowed")
    return parse_terms(text)


def parse_terms(text: str) -> JobFilter:
    """The filter `text` says, in one linear pass; callers bound its length first."""
    tokens = _Tokens(text)
    if tokens.peek().kind == "end":
        return JobFilter()
    states: frozenset[JobState] | None = None
    labels: list[tuple[str, str]] = []
    retiring: bool | None = None
    for _ in range(MAX_FILTER_TERMS):
        term = tokens.take()
        if term.kind == "word" and term.text == "state":
            chosen = _states(tokens)
            states = chosen if states is None else states & chosen
        elif term.kind == "word" and term.text.startswith(_LABEL_PREFIX):
            labels.append(_label(term, tokens))
        elif term.kind == "word" and term.text == _RETIRING:
            retiring = _retiring(tokens, retiring)
        else:
            raise _unexpected(
                term, f"a term (state = X, labels.<key> = value or {_RETIRING} = true)"
            )
        if not tokens.and_follows():
            return JobFilter(states, tuple(labels), retiring)
    raise _bad_filter(f"has more than {MAX_FILTER_TERMS} terms")


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    at: int
    spaced: bool
    """Whitespace comes right before it (AND must stand apart from its neighbours)."""


class _Tokens:
    """The filter's tokens, read left to right with one token of lookahead."""

    def __init__(self, text: str) -> None:
        self._tokens = list(_scan(text))
        self._next = 0

    def peek(self) -> _Token:
        return self._tokens[self._next]

    def take(self) -> _Token:
        token = self._tokens[self._next]
        self._next = min(self._next + 1, len(self._tokens) - 1)
        return token

    def expect(self, text: str, what: str) -> None:
        token = self.take()
        if token.text != text:
            raise _unexpected(token, what)

    def and_follows(self) -> bool:
        """Whether an AND, spaced on both sides, comes next (taken); False at the end."""
        token = self.take()
        if token.kind == "end":
            return False
        if token.kind == "word" and token.text == "AND" and token.spaced and self.peek().spaced:
            return True
        raise _unexpected(token, "AND (with spaces around it) or the end of the filter")


def _scan(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    spaced = True
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup or "other"
        if kind == "space":
            spaced = True
            continue
        if kind == "other":
            why = "opens a string never closed" if match[0] == '"' else "is not allowed"
            raise _bad_filter(f"{echo(match[0])} at character {match.start()} {why}")
        tokens.append(_Token(kind, match[0], match.start(), spaced))
        spaced = False
    tokens.append(_Token("end", "", len(text), True))
    return tokens


def _states(tokens: _Tokens) -> frozenset[JobState]:
    """After `state`: `= X` or `= (A OR B ...)`."""
    tokens.expect("=", "= after state")
    if tokens.peek().text != "(":
        return frozenset({_state(tokens.take())})
    tokens.take()
    chosen = {_state(tokens.take())}
    while tokens.peek().text == "OR":
        if len(chosen) >= MAX_FILTER_TERMS:
            raise _bad_filter(f"lists more than {MAX_FILTER_TERMS} states")
        tokens.take()
        chosen.add(_state(tokens.take()))
    tokens.expect(")", "OR or ) in a list of states")
    return frozenset(chosen)


def _state(token: _Token) -> JobState:
    if token.kind != "word" or _STATE_NAME.fullmatch(token.text) is None:
        raise _unexpected(token, "a state name such as RUNNING")
    try:
        return JobState(token.text)
    except ValueError:
        raise _bad_filter(f"unknown state {echo(token.text)}") from None


def _label(term: _Token, tokens: _Tokens) -> tuple[str, str]:
    """After `labels.<key>`: `= "value"` or `= value`."""
    key = term.text.removeprefix(_LABEL_PREFIX)
    if _LABEL_KEY.fullmatch(key) is None:
        raise _unexpected(term, "labels.<key>, the key in lower case letters, digits, _ or -")
    tokens.expect("=", f"= after {term.text}")
    value = tokens.take()
    if value.kind == "string":
        return key, value.text[1:-1]
    if value.kind == "word" and _LABEL_VALUE.fullmatch(value.text) is not None:
        return key, value.text
    raise _unexpected(value, 'a label value, "quoted" or in lower case letters, digits, _ or -')


def _retiring(tokens: _Tokens, before: bool | None) -> bool:
    """After `base_model_retiring`: `= true` or `= false`; asked twice, it must agree."""
    tokens.expect("=", f"= after {_RETIRING}")
    value = tokens.take()
    wanted = _BOOLEANS.get(value.text) if value.kind == "word" else None
    if wanted is None:
        raise _unexpected(value, "true or false")
    if before is not None and before != wanted:
        raise _bad_filter(f"asks for {_RETIRING} both true and false")
    return wanted


def _unexpected(token: _Token, expected: str) -> InvalidArgument:
    found = "the end" if token.kind == "end" else echo(token.text)
    return _bad_filter(f"cannot read {found} at character {token.at}: expected {expected}")


def _bad_filter(why: str) -> InvalidArgument:
    hint = (
        'use terms like state = RUNNING, state = (QUEUED OR RUNNING), labels.team = "x", '
        f"{_RETIRING} = true"
    )
    return InvalidArgument(
        f"invalid filter: {why}", [FieldViolation("filter", f"{why}; {hint} joined by AND")]
    )


class PageTokens:
    """Issues and checks page tokens, signed with the replicas' shared key."""

    def __init__(self, key: PageTokenKey) -> None:
        self._key = key

    async def encode(self, tenant: str, filter_text: str, seq: int) -> str:
        """The token that continues the listing of `tenant` under `filter_text` at `seq`."""
        return sign_token(await self._key.secret(), tenant, filter_text, seq)

    async def decode(self, token: str, tenant: str, filter_text: str) -> int | None:
        """The cursor in `token` (None: from the start); INVALID_ARGUMENT unless this
        service issued it for this tenant and filter. Its shape is checked before the key
        is read, so garbage costs no Redis round trip."""
        if not token:
            return None
        raw = _token_bytes(token)
        return _verified_seq(raw, await self._key.secret(), tenant, filter_text)


_TOKEN_VERSION = b"\x01"
_SEQ_BYTES = 8
_BODY_BYTES = len(_TOKEN_VERSION) + _SEQ_BYTES
_TOKEN_BYTES = _BODY_BYTES + hashlib.sha256().digest_size


def sign_token(secret: bytes, tenant: str, filter_text: str, seq: int) -> str:
    """A token for cursor `seq`: version, cursor, and their HMAC (unpadded base64url)."""
    body = _TOKEN_VERSION + seq.to_bytes(_SEQ_BYTES, "big")
    raw = body + _mac(secret, tenant, filter_text, body)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _mac(secret: bytes, tenant: str, filter_text: str, body: bytes) -> bytes:
    # Fixed-size parts (two digests and the body), so no two inputs share a message.
    tenant_digest = hashlib.sha256(tenant.encode()).digest()
    filter_digest = hashlib.sha256(filter_text.encode()).digest()
    return hmac.digest(secret, tenant_digest + filter_digest + body, "sha256")


def _token_bytes(token: str) -> bytes:
    if len(token) > MAX_PAGE_TOKEN_CHARS:
        raise _bad_token("is longer than any token this service issues")
    try:
        padded = token + "=" * (-len(token) % 4)
        raw = base64.b64decode(padded, altchars=b"-_", validate=True)
    except ValueError:  # binascii.Error, and non-ASCII text
        raise _bad_token("is not a token this service issued") from None
    if len(raw) != _TOKEN_BYTES or not raw.startswith(_TOKEN_VERSION):
        raise _bad_token("is not a token this service issued")
    return raw


def _verified_seq(raw: bytes, secret: bytes, tenant: str, filter_text: str) -> int:
    body, mac = raw[:_BODY_BYTES], raw[_BODY_BYTES:]
    if not hmac.compare_digest(mac, _mac(secret, tenant, filter_text, body)):
        raise _bad_token("was not issued for this caller and filter (or was altered)")
    return int.from_bytes(body[len(_TOKEN_VERSION) :], "big")


def _bad_token(why: str) -> InvalidArgument:
    return InvalidArgument(f"invalid page_token: it {why}", [FieldViolation("page_token", why)])


def page_size_of(requested: int, *, max_size: int = MAX_PAGE_SIZE) -> int:
    """A List call's page size: 0 is the default, at most `max_size`; negative is refused."""
    if requested < 0:
        raise InvalidArgument(
            "page_size must not be negative", [FieldViolation("page_size", "must be >= 0")]
        )
    return min(requested or DEFAULT_PAGE_SIZE, max_size)


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
