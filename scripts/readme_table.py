"""Rewrite the configuration table in README.md from core/runtime/settings.py."""

from __future__ import annotations

import re
from pathlib import Path

from core.runtime.settings import markdown_table

README = Path(__file__).resolve().parent.parent / "README.md"


def main() -> None:
    text = README.read_text()
    pattern = re.compile(r"\| variable \| default \| meaning \|\n(?:\|.*\|\n)+")
    if not pattern.search(text):
        raise SystemExit("no configuration table found in README.md")
    README.write_text(pattern.sub(lambda _: markdown_table() + "\n", text, count=1))


if __name__ == "__main__":
    main()
