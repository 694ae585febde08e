"""Named blocks in the `.sql` files the SQL backends ship (procrastinate's style).

A file is a header comment describing its data model, then blocks that each start with a
``-- name: <block>`` line. Also what SQLite and PostgreSQL do alike with those blocks:
splicing run-time clauses into a template.
"""

from __future__ import annotations

import re
from importlib.resources import files

_NAME_LINE = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def parse_blocks(text: str, source: str) -> dict[str, str]:
    """Split a `.sql` file into its ``-- name: x`` blocks; text before the first is a header."""
    parts = _NAME_LINE.split(text)
    blocks: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in blocks:
            raise ValueError(f"{source}: block {name!r} is defined twice")
        blocks[name] = body.strip()
    return blocks


def load_blocks(package: str, filename: str) -> dict[str, str]:
    """The named blocks of ``filename`` in ``package``."""
    text = files(package).joinpath(filename).read_text(encoding="utf-8")
    return parse_blocks(text, filename)


def splice(template: str, slots: frozenset[str], **clauses: str) -> str:
    """Fill ``{slot}`` places of a template with clauses built at run time.

    Only the names in ``slots`` may be filled: a typo is an error, not a template left with
    a placeholder the database would reject with a less helpful message.
    """
    for slot, clause in clauses.items():
        if slot not in slots:
            raise ValueError(f"unknown SQL slot {slot!r}")
        template = template.replace("{" + slot + "}", clause)
    return template

