"""Run buf (protobuf lint and breaking-change detection) on protos/.

Usage: python scripts/buf.py [check|lint|breaking|baseline]

  check     lint, then breaking (the default; what tests/test_protos_buf.py asserts)
  lint      `buf lint` with the rules in buf.yaml
  breaking  `buf breaking` of protos/ against the released API, protos/baseline.binpb
  baseline  rewrite protos/baseline.binpb from the current protos: only when releasing
            (see protos/README.md), never to silence a breaking change

buf is installed from npm into .tools/ by bin/_setup.sh (run `bash bin/test` once).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUF = ROOT / ".tools" / "node_modules" / ".bin" / "buf"
MODULE = "protos"
BASELINE = "protos/baseline.binpb"


def buf(*args: str) -> int:
    """Run buf from the repository root (where buf.yaml is); return its exit status."""
    if not BUF.exists():
        raise SystemExit(f"{BUF} is missing: run `bash bin/test` (bin/_setup.sh installs buf)")
    return subprocess.run([str(BUF), *args], cwd=ROOT, check=False).returncode


def lint() -> int:
    return buf("lint")


def breaking() -> int:
    # The module directory, not the workspace: the workspace has two modules (protos and
    # third_party) and buf compares image by image, while the baseline is one image.
    return buf("breaking", MODULE, "--against", BASELINE)


def baseline() -> int:
    # Imports stay in (a self-contained image); source info (comments) is left out.
    return buf("build", MODULE, "--exclude-source-info", "-o", BASELINE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "command", nargs="?", default="check", choices=["check", "lint", "breaking", "baseline"]
    )
    command = parser.parse_args().command
    if command == "lint":
        return lint()
    if command == "breaking":
        return breaking()
    if command == "baseline":
        return baseline()
    lint_status = lint()
    return breaking() or lint_status


if __name__ == "__main__":
    sys.exit(main())
