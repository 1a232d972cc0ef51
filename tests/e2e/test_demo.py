"""The README's demo command, run as a user would: real processes end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(180)
def test_the_demo_follows_a_job_per_provider_to_success_and_stops_cleanly() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "devstack", "--steps-per-second", "20"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "QUEUED" in out and "RUNNING" in out
    assert "demo-team (GEMINI_API): tuningJobs/" in out
    assert "vertex-team (VERTEX_AI): tuningJobs/" in out
    assert out.count("ended SUCCEEDED") == 2
    assert "epoch 5:" in out  # the Gemini API's loss per epoch
    assert "checkpoint 5: epoch 5" in out  # Vertex AI's checkpoints
    assert "/endpoints/" in out
    for process in ("worker", "service", "emulator"):
        assert f"stopped {process}: exit code 0" in out
