"""A benchmark run records how fast its machine ran plain Python, beside its figures."""

from __future__ import annotations

import json
from pathlib import Path

from bench import machine
from bench.figure import write_json


def test_a_run_records_how_fast_its_machine_was(tmp_path: Path) -> None:
    ns = machine.ns_per_addition(additions=20_000, tries=2)
    assert 0.1 < ns < 100_000  # an addition takes tens of ns on anything that runs the suite
    speed = {"ns_per_addition_before": ns, "ns_per_addition_after": ns}
    written = write_json([], tmp_path / "latest.json", machine=speed)
    assert json.loads(written.read_text())["machine"] == speed
