"""Rewrite the generated tables in the docs from the code they describe.

Each table is found in its document by its header row and replaced whole, so the text
around it is left alone; `tests/test_project.py` fails while a document's table differs
from what its code generates. Run `python scripts/docs_tables.py` after changing the code.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core import errors
from core.runtime.settings import limits_table, markdown_table
from service import limits

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Table:
    """A generated markdown table: where it lives, the header row that finds it, its text."""

    path: Path
    header: str
    render: Callable[[], str]

    def rewritten(self, text: str) -> str:
        """`text` with this table replaced by a freshly rendered one."""
        pattern = re.compile(re.escape(self.header) + r"\n(?:\|.*\|\n)+")
        if not pattern.search(text):
            raise SystemExit(f"no table headed {self.header!r} in {self.path.relative_to(ROOT)}")
        return pattern.sub(lambda _: self.render() + "\n", text, count=1)


TABLES = [
    Table(ROOT / "docs" / "operations.md", "| variable | default | meaning |", markdown_table),
    Table(
        ROOT / "docs" / "errors.md",
        "| reason | gRPC code | meaning | what the caller should do |",
        errors.markdown_table,
    ),
    Table(
        ROOT / "docs" / "security.md",
        "| limit (setting) | default | what it bounds |",
        limits_table,
    ),
    Table(
        ROOT / "docs" / "security.md",
        "| limit (constant) | value | what it bounds |",
        limits.constants_table,
    ),
]


def main() -> None:
    for table in TABLES:
        table.path.write_text(table.rewritten(table.path.read_text()))


if __name__ == "__main__":
    main()
