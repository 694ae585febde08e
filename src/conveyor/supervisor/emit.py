"""A tiny YAML writer for the manifests `conveyor export` writes (no PyYAML needed).

It writes block mappings and sequences of plain data; strings are quoted (JSON style, which
YAML accepts) unless they are plainly safe, so ``"true"``, ``"1.0"`` or ``"30s"`` never
change type on the way.
"""

from __future__ import annotations

import json
import re
from typing import Any

_PLAIN = re.compile(r"^[A-Za-z/$][A-Za-z0-9_./@$-]*$")
_SPECIAL = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def scalar(value: Any) -> str:
    """One scalar as YAML."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in _SPECIAL:
        return text
    return json.dumps(text, ensure_ascii=False)


def _block(value: Any) -> bool:
    return isinstance(value, dict | list) and bool(value)


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[" + ", ".join(json.dumps(v) for v in value) + "]"
    return scalar(value)


def _flow_list(value: Any) -> bool:
    """A short list of scalars (a command line) reads best on one line."""
    return isinstance(value, list) and all(isinstance(v, str | int | float) for v in value)


def _lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if _block(item) and not _flow_list(item):
                lines.append(f"{pad}{scalar(key)}:")
                lines += _lines(item, indent + 2)
            else:
                lines.append(f"{pad}{scalar(key)}: {_inline(item)}")
        return lines
    for item in value:
        if _block(item) and not _flow_list(item):
            sub = _lines(item, indent + 2)
            sub[0] = f"{pad}- {sub[0][indent + 2 :]}"
            lines += sub
        else:
            lines.append(f"{pad}- {_inline(item)}")
    return lines


def dump(document: dict[str, Any] | list[Any]) -> str:
    """One YAML document."""
    return "\n".join(_lines(document, 0)) + "\n"


def dump_all(documents: list[dict[str, Any]], header: str = "") -> str:
    """Several YAML documents separated by ``---``, after an optional ``#`` comment header."""
    head = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    return head + "---\n".join(dump(d) for d in documents)
