"""Durations and sizes as people write them: ``500ms``, ``30s``, ``5m``, ``1h``, ``512MB``.

Shared by every setting that holds seconds or a size, whichever source it comes from.
"""

from __future__ import annotations

import math
import re

_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hrs": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86_400.0,
    "day": 86_400.0,
    "days": 86_400.0,
}
_PART = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]+)")


def parse_duration(text: str) -> float:
    """Seconds in ``text``: a plain number (``2.5``) or amounts with units (``500ms``,
    ``30s``, ``5m``, ``1h``, ``1d``, ``1h30m``); a `ValueError` saying what is accepted."""
    value = text.strip().lower()
    try:
        return float(value)
    except ValueError:
        pass
    total, end = 0.0, 0
    for match in _PART.finditer(value):
        unit = _UNITS.get(match.group(2))
        if match.start() != end or unit is None:
            break
        total += float(match.group(1)) * unit
        end = match.end()
    if end == 0 or end != len(value) or not math.isfinite(total):
        raise ValueError(
            f"{text!r} is not a duration: give seconds (2.5) or a number with a unit, "
            "e.g. 500ms, 30s, 5m, 1h, 1d, 1h30m"
        )
    return total


_SIZES = {"b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2, "g": 1024**3, "gb": 1024**3}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([a-z]*)\s*$")


def parse_size(text: str, unit: int) -> int:
    """A size in ``text`` counted in ``unit`` bytes: a plain number is already in ``unit``
    (``512``), else a number with ``KB``, ``MB`` or ``GB`` (``1GB``, ``512M``)."""
    match = _SIZE.match(text.lower())
    factor = _SIZES.get(match.group(2)) if match and match.group(2) else None
    if match and not match.group(2):
        return int(float(match.group(1)))
    if match is None or factor is None:
        raise ValueError(f"{text!r} is not a size: give a whole number or e.g. 512KB, 64MB, 1GB")
    return int(float(match.group(1)) * factor // unit)
