"""Each tenant's use of the platform per calendar month (UTC), and the rules that count it.

The counts live in one Redis hash per tenant and month (`Keys.tenant_usage`), written only
inside the scripts that already run at each event, so counting costs no round trip of its
own (core.redis.scripts CREATE and SAVE, core.redis.inference_quota GENERATE_SETTLE):

- a new job (not a client's retry of its create): `jobs_created`, `training_examples` and
  `estimated_training_tokens` (`estimated_training_tokens` below), in the month of the create;
- a job's first save as SUCCEEDED: `billable_training_tokens` as the upstream reported them
  (`Job.data_stats.billable_tokens`; 0 where it reports none), in the month it ended;
- a settled generate call: `generate_requests`, `generate_prompt_tokens` and
  `generate_candidate_tokens` as the upstream counted them, in the month it settled.

A month's hash expires USAGE_RETENTION_S after its last write.
"""

from __future__ import annotations

import calendar
import functools
import math
import re
import time
from dataclasses import dataclass
from enum import StrEnum

CHARS_PER_TOKEN = 4
"""Google's rule of thumb for text: about four characters a token."""
DEFAULT_EPOCHS = 5
"""The epochs a job runs when it names none (the upstreams' default)."""
USAGE_RETENTION_S = 400 * 24 * 3600
"""How long a month's counts are kept after their last write (a year and a bit, for
year-on-year chargeback), so that Redis does not grow forever."""
MONTH_SHAPE = re.compile(r"(?P<year>\d{4})-(?P<month>0[1-9]|1[0-2])")
"""A month as callers name it, "YYYY-MM"."""


class UsageField(StrEnum):
    """The fields of a tenant-month's usage hash (named as TenantUsage's)."""

    JOBS_CREATED = "jobs_created"
    TRAINING_EXAMPLES = "training_examples"
    ESTIMATED_TRAINING_TOKENS = "estimated_training_tokens"
    BILLABLE_TRAINING_TOKENS = "billable_training_tokens"
    GENERATE_REQUESTS = "generate_requests"
    GENERATE_PROMPT_TOKENS = "generate_prompt_tokens"
    GENERATE_CANDIDATE_TOKENS = "generate_candidate_tokens"


@dataclass(frozen=True)
class MonthUsage:
    """One tenant's counts in one month (0 where nothing was counted)."""

    tenant: str
    month: str
    jobs_created: int = 0
    training_examples: int = 0
    estimated_training_tokens: int = 0
    billable_training_tokens: int = 0
    generate_requests: int = 0
    generate_prompt_tokens: int = 0
    generate_candidate_tokens: int = 0


def month_of(t_s: float) -> str:
    """The UTC month of `t_s` (seconds since the epoch), "YYYY-MM"."""
    return _month_of_day(int(t_s // DAY_S))


DAY_S = 86_400


@functools.lru_cache(maxsize=4)
def _month_of_day(day: int) -> str:
    """Days since the epoch to their month: every create and generate asks, so the
    answer of the few days in use is kept (UTC days have no leap seconds here)."""
    return time.strftime("%Y-%m", time.gmtime(day * DAY_S))


def next_month_start_s(t_s: float) -> float:
    """When the UTC month after that of `t_s` begins (seconds since the epoch)."""
    now = time.gmtime(t_s)
    year, month = (now.tm_year + 1, 1) if now.tm_mon == 12 else (now.tm_year, now.tm_mon + 1)
    return float(calendar.timegm((year, month, 1, 0, 0, 0, 0, 0, 0)))


def estimated_training_tokens(characters: int, epoch_count: int) -> int:
    """A job's training tokens before the upstream counts them: its examples' characters
    (inputs and outputs) / CHARS_PER_TOKEN, rounded up, times its epochs (DEFAULT_EPOCHS
    when it names none). What the budgets count."""
    epochs = epoch_count or DEFAULT_EPOCHS
    return math.ceil(characters / CHARS_PER_TOKEN) * epochs


def used_fraction(used_tokens: int, budget_tokens: int) -> float:
    """Share of a budget used, 0-1+ (0 without a budget)."""
    return used_tokens / budget_tokens if budget_tokens > 0 else 0.0
