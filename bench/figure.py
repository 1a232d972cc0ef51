"""A measured figure, its baseline, the ratio and whether it meets its goal."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Figure:
    name: str
    unit: str
    ours: float
    baseline: float
    goal: str
    """e.g. `ratio >= 0.85`"""
    passed: bool
    details: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline if self.baseline else float("inf")


def figure(  # noqa: PLR0917 (a figure is these six things)
    name: str,
    unit: str,
    ours: float,
    baseline: float,
    goal: str,
    meets: Callable[[float], bool],
    **details: float,
) -> Figure:
    """Build a figure; `meets` decides pass or fail from the ratio ours / baseline."""
    ratio = ours / baseline if baseline else float("inf")
    return Figure(name, unit, ours, baseline, goal, meets(ratio), dict(details))


def crashed(name: str) -> Figure:
    """The row of a figure whose measurement raised: reported as failed, with no numbers."""
    nan = float("nan")
    return Figure(f"{name} (crashed)", "", nan, nan, "completes", passed=False)


def table(figures: list[Figure]) -> str:
    rows = [
        f"| {'figure':<36} | {'ours':>10} | {'baseline':>10} | {'ratio':>7} "
        f"| {'goal':<21} | pass |",
        f"|{'-' * 38}|{'-' * 12}|{'-' * 12}|{'-' * 9}|{'-' * 23}|------|",
    ]
    for f in figures:
        rows.append(
            f"| {f.name:<36} | {f.ours:>10.4g} | {f.baseline:>10.4g} | {f.ratio:>7.3f} | "
            f"{f.goal:<21} | {'yes' if f.passed else 'NO':<4} |"
        )
    return "\n".join(rows)


def details(figures: list[Figure]) -> str:
    """One line per figure with details: what else was measured alongside."""
    return "\n".join(
        f"{f.name}: " + ", ".join(f"{k}={v:.4g}" for k, v in f.details.items())
        for f in figures
        if f.details
    )


def write_json(
    figures: list[Figure], path: Path | None = None, *, machine: dict[str, float] | None = None
) -> Path:
    """The figures as JSON, with when, where and (`machine`) how fast they were measured."""
    path = path or RESULTS / "latest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "machine": machine or {},
        "figures": [dataclasses.asdict(f) | {"ratio": f.ratio} for f in figures],
    }
    path.write_text(json.dumps(payload, indent=2))
    return path
