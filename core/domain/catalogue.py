"""The base models' retirement dates, and the one rule of what "retiring" means.

Google retires base models on a published schedule; a tuned model stops answering when
its base model retires. The platform knows the dates as configuration
(`TUNING_BASE_MODEL_RETIREMENTS`: `model=YYYY-MM-DD`, comma-separated, a date read as
00:00 UTC) and warns `TUNING_RETIREMENT_WARNING_DAYS` ahead: a base model is *retiring*
when its retire time is at most that window away, or already past (`Catalogue.retiring`,
the only place this is decided). A retired one (its retire time past) is no longer
offered for new jobs (service.validation). A model the setting does not name has no
known date and is never retiring.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

SECONDS_PER_DAY = 86_400
MAX_RETIREMENTS = 256
"""Most entries the setting may hold (a catalogue, not a data set)."""


@dataclass(frozen=True)
class Retirement:
    """When a base model retires, and whether that is within the warning window now."""

    retire_time_s: float
    retiring: bool


@dataclass(frozen=True)
class Catalogue:
    """Retire times (seconds since the epoch) by base model, and the warning window."""

    retire_times_s: Mapping[str, float] = field(default_factory=dict)
    warning_s: float = 90.0 * SECONDS_PER_DAY

    @classmethod
    def from_entries(cls, entries: Sequence[str], *, warning_days: float) -> Catalogue:
        """The catalogue `TUNING_BASE_MODEL_RETIREMENTS` describes; ValueError saying
        which entry is wrong (settings turn it into a configuration error at startup)."""
        if len(entries) > MAX_RETIREMENTS:
            raise ValueError(f"{len(entries)} entries; at most {MAX_RETIREMENTS}")
        if warning_days < 0:
            raise ValueError("the warning window must not be negative")
        times = dict(_entry(e) for e in entries)
        return cls(times, warning_days * SECONDS_PER_DAY)

    def retiring(self, retire_time_s: float, now_s: float) -> bool:
        """The rule: retiring when the retire time is within the window, or past."""
        return retire_time_s - now_s <= self.warning_s

    def retirement(self, base_model: str, now_s: float) -> Retirement | None:
        """`base_model`'s retirement as of `now_s`; None when no date is known."""
        retire_time_s = self.retire_times_s.get(base_model)
        if retire_time_s is None:
            return None
        return Retirement(retire_time_s, self.retiring(retire_time_s, now_s))

    def retired_on(self, base_model: str, now_s: float) -> str | None:
        """The date `base_model` retired on (YYYY-MM-DD) if that is past; else None."""
        retire_time_s = self.retire_times_s.get(base_model)
        if retire_time_s is None or retire_time_s > now_s:
            return None
        return day_of(retire_time_s)

    def retiring_models(self, now_s: float) -> frozenset[str]:
        """The base models retiring as of `now_s` (for ListTuningJobs' filter)."""
        return frozenset(m for m, t in self.retire_times_s.items() if self.retiring(t, now_s))


def earliest(retirements: Sequence[Retirement | None]) -> Retirement | None:
    """The first of several models' retirements (an alias's targets), retiring if any is."""
    known = [r for r in retirements if r is not None]
    if not known:
        return None
    first = min(r.retire_time_s for r in known)
    return Retirement(first, any(r.retiring for r in known))


def day_of(seconds: float) -> str:
    """The UTC date of `seconds`, YYYY-MM-DD."""
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).date().isoformat()


def _entry(entry: str) -> tuple[str, float]:
    model, sep, day = entry.partition("=")
    model, day = model.strip(), day.strip()
    if not sep or not model:
        raise ValueError(f"{entry!r} is not model=YYYY-MM-DD")
    try:
        date = datetime.date.fromisoformat(day)
    except ValueError:
        raise ValueError(f"{entry!r}: {day!r} is not a date YYYY-MM-DD") from None
    midnight = datetime.datetime(date.year, date.month, date.day, tzinfo=datetime.UTC)
    return model, midnight.timestamp()
