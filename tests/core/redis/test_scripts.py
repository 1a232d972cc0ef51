"""The Lua scripts keep their convention: inputs named once, at the top."""

from __future__ import annotations

import re

from core.redis import scripts
from core.redis.scripts import Script

INPUT = re.compile(r"\b(KEYS|ARGV)\b(\[\d+\])?")
NAMED_INPUT = re.compile(r"^local \w+ = \S*\b(KEYS|ARGV)\b")


def all_scripts() -> dict[str, Script]:
    return {name: s for name, s in vars(scripts).items() if isinstance(s, Script)}


def test_every_script_names_its_inputs_before_anything_else() -> None:
    assert len(all_scripts()) >= 10
    for name, script in all_scripts().items():
        lines = [line.strip() for line in script.source.strip().splitlines()]
        header = 0
        while header < len(lines) and NAMED_INPUT.match(lines[header]):
            header += 1
        assert header > 0, f"{name} does not begin by naming its inputs"
        for line in lines[header:]:
            assert not INPUT.search(line), f"{name} reads KEYS/ARGV past its header: {line}"
