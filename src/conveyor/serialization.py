"""Strict JSON for arguments, headers and results.

Only JSON's own types go in: ``None``, ``bool``, ``int`` (64-bit), finite ``float``,
``str``, ``list``/``tuple`` and ``dict`` with ``str`` keys. Anything else (a ``datetime``,
a ``set``, ``bytes``, ``NaN``, an object) is refused at the call site with the path of the
offending value, rather than silently turned into a string. No pickle, ever.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from conveyor.errors import PayloadTooLarge, SerializationError

DEFAULT_MAX_PAYLOAD = 1024 * 1024
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
_MAX_DEPTH = 100


def check_json(value: Any, path: str) -> None:
    """Raise `SerializationError` naming ``path`` if ``value`` is not strict JSON."""
    _check(value, path, 0, set())


def _check(value: Any, path: str, depth: int, seen: set[int]) -> None:
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise SerializationError(
                f"{path} is an integer too large for JSON ({value}); pass it as a string"
            )
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SerializationError(
                f"{path} is {value!r}, which strict JSON cannot represent; "
                "pass None or a string"
            )
        return
    if depth >= _MAX_DEPTH:
        raise SerializationError(
            f"{path} is nested more than {_MAX_DEPTH} levels deep (is it recursive?)"
        )
    if isinstance(value, (list, tuple)):
        _enter(value, path, seen)
        for i, item in enumerate(value):
            _check(item, f"{path}[{i}]", depth + 1, seen)
        seen.discard(id(value))
        return
    if isinstance(value, dict):
        _enter(value, path, seen)
        for key, item in value.items():
            if not isinstance(key, str):
                raise SerializationError(
                    f"{path} has a key {key!r} of type {type(key).__name__}; "
                    "JSON object keys must be str"
                )
            _check(item, f"{path}[{key!r}]", depth + 1, seen)
        seen.discard(id(value))
        return
    raise SerializationError(
        f"{path} is a {type(value).__name__}, which is not JSON; pass plain data "
        "(str, int, float, bool, None, list, dict) and convert it back inside the task"
    )


def _enter(value: object, path: str, seen: set[int]) -> None:
    if id(value) in seen:
        raise SerializationError(f"{path} contains itself; recursive structures cannot be stored")
    seen.add(id(value))


def encode_payload(
    args: tuple[Any, ...] | list[Any],
    kwargs: dict[str, Any],
    *,
    max_bytes: int = DEFAULT_MAX_PAYLOAD,
) -> bytes:
    """Encode a call's arguments, checking every value and the total size."""
    for i, arg in enumerate(args):
        check_json(arg, f"args[{i}]")
    for name, arg in kwargs.items():
        check_json(arg, f"kwargs[{name!r}]")
    data = orjson.dumps({"args": list(args), "kwargs": kwargs})
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"the job's arguments take {len(data):,} bytes, over the {max_bytes:,}-byte limit "
            f"(largest: {_largest(args, kwargs)}); store big data elsewhere and pass a "
            "reference, or raise MAX_PAYLOAD_BYTES"
        )
    return data


def _largest(args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]) -> str:
    sizes = {f"args[{i}]": len(orjson.dumps(a)) for i, a in enumerate(args)}
    sizes.update({f"kwargs[{k!r}]": len(orjson.dumps(v)) for k, v in kwargs.items()})
    name = max(sizes, key=sizes.__getitem__)
    return f"{name}, {sizes[name]:,} bytes"


def decode_payload(data: bytes) -> tuple[list[Any], dict[str, Any]]:
    """Decode stored arguments; raise `SerializationError` if they are corrupt."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise SerializationError(f"the stored payload is not valid JSON ({exc})") from None
    if (
        not isinstance(obj, dict)
        or not isinstance(obj.get("args"), list)
        or not isinstance(obj.get("kwargs"), dict)
    ):
        raise SerializationError(
            'the stored payload is not of the form {"args": [...], "kwargs": {...}}'
        )
    return obj["args"], obj["kwargs"]


def encode_value(value: Any, path: str = "result") -> bytes:
    """Encode one value (a result or a header) as strict JSON."""
    check_json(value, path)
    return orjson.dumps(value)


def decode_value(data: bytes) -> Any:
    """Decode a value stored by `encode_value`."""
    return orjson.loads(data)
