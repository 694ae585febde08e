"""Named blocks in the `.sql` files the SQL backends ship (procrastinate's style).

A file is a header comment describing its data model, then blocks that each start with a
``-- name: <block>`` line. Also what SQLite and PostgreSQL do alike with those blocks:
splicing run-time clauses into a template, numbering the ``migrate_N`` steps, and refusing
a schema newer than the code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from importlib.resources import files

from conveyor.errors import SchemaVersionError

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


def migration_steps(names: Iterable[str], source: str) -> list[tuple[int, str]]:
    """The ``migrate_N`` blocks among ``names`` as (N, block name), numbered 1, 2, 3, ...

    The schema version a store records is the number of the last step applied, so a gap or
    a duplicate number would skip or repeat a step: refused when the code loads.
    """
    steps = sorted(
        (int(name.removeprefix("migrate_")), name) for name in names if name.startswith("migrate_")
    )
    if [n for n, _ in steps] != list(range(1, len(steps) + 1)):
        raise RuntimeError(f"{source}: migrate_N steps must be numbered 1, 2, 3, ... with no gap")
    return steps


def newer_schema(where: str, version: int, known: int) -> SchemaVersionError:
    """The error for a store whose schema ``version`` is past the ``known`` one of this code.

    ``where`` names the store (``the SQLite database /srv/app.db``).
    """
    return SchemaVersionError(
        f"{where} has Conveyor schema version {version}, but this version of Conveyor only "
        f"knows up to {known}: it was migrated by a newer Conveyor. Upgrade Conveyor here too "
        "(schemas are never migrated backwards)"
    )
