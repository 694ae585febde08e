"""Strict JSON for arguments, headers and results.

Only JSON's own types go in: ``None``, ``bool``, ``int`` (64-bit), finite ``float``,
``str``, ``list``/``tuple`` and ``dict`` with ``str`` keys. Anything else (a ``datetime``,
a ``set``, ``bytes``, ``NaN``, an object) is refused at the call site with the path of the
offending value, rather than silently turned into a string. No pickle, ever.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson

from conveyor.errors import PayloadTooLarge, SerializationError

# -- What one job may carry, in one place (docs/tasks.md#limits lists them) ---------------
#: Encoded arguments (``MAX_PAYLOAD_BYTES`` changes it per app).
DEFAULT_MAX_PAYLOAD = 1024 * 1024
#: A task's encoded return value: results live in the same records as payloads.
MAX_RESULT_BYTES = DEFAULT_MAX_PAYLOAD
#: All of a job's headers together, encoded: they are small metadata, copied into every
#: read, listing and log line of the job.
MAX_HEADERS_BYTES = 64 * 1024
#: A unique key, as UTF-8: it is an index entry in every store.
MAX_UNIQUE_KEY_BYTES = 1024
#: Queue, task and schedule names.
MAX_NAME_CHARS = 200
#: The latest run time a job may have (9999-12-31 23:59:59 UTC), so every date shown for it
#: (CLI, dashboard) can still be printed.
MAX_RUN_AT = 253402300799.0

_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
_MAX_DEPTH = 100
_CLIP = 60


def clip_repr(value: object, width: int = _CLIP) -> str:
    """``repr(value)``, cut to about ``width`` characters, for error messages."""
    text = repr(value)
    return text if len(text) <= width else f"{text[: width - 5]}...{text[-2:]}"


def check_text(value: str, path: str) -> None:
    """Refuse a ``str`` that is not valid Unicode (a lone surrogate such as ``"\\ud800"``)."""
    if value.isascii():
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise SerializationError(
            f"{path} ({clip_repr(value)}) holds a lone surrogate {value[exc.start]!r} at "
            f"index {exc.start}, which is not valid Unicode text and cannot be stored; "
            "fix the text where it came from (e.g. decode bytes with errors='replace')"
        ) from None


def check_json(value: Any, path: str) -> None:
    """Raise `SerializationError` naming ``path`` if ``value`` is not strict JSON."""
    _check(value, path, 0, set())


def _check(value: Any, path: str, depth: int, seen: set[int]) -> None:
    if isinstance(value, str):
        check_text(value, path)
        return
    if value is None or isinstance(value, bool):
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
                f"{path} is {value!r}, which strict JSON cannot represent; pass None or a string"
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
        _check_dict(value, path, depth, seen)
        return
    raise SerializationError(
        f"{path} is a {type(value).__name__}, which is not JSON; pass plain data "
        "(str, int, float, bool, None, list, dict) and convert it back inside the task"
    )


def _check_dict(value: dict[Any, Any], path: str, depth: int, seen: set[int]) -> None:
    _enter(value, path, seen)
    for key, item in value.items():
        if not isinstance(key, str):
            raise SerializationError(
                f"{path} has a key {clip_repr(key)} of type {type(key).__name__}; "
                "JSON object keys must be str"
            )
        check_text(key, f"{path} key")
        _check(item, _item_path(path, key), depth + 1, seen)
    seen.discard(id(value))


def _item_path(path: str, key: str) -> str:
    return f"{path}[{clip_repr(key)}]"


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
        check_text(name, "a keyword argument's name")
        check_json(arg, _item_path("kwargs", name))
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


def encode_value(value: Any, path: str = "result", *, max_bytes: int = MAX_RESULT_BYTES) -> bytes:
    """Encode one value (a task's result) as strict JSON of at most ``max_bytes``."""
    check_json(value, path)
    data = orjson.dumps(value)
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"{path} takes {len(data):,} bytes as JSON, over the {max_bytes:,}-byte limit "
            f"(it starts {clip_repr(data[:_CLIP].decode('utf-8', 'replace'))}); store large "
            "data elsewhere (a file, a bucket, a table) and return a reference to it"
        )
    return data


def decode_value(data: bytes) -> Any:
    """Decode a value stored by `encode_value`."""
    return orjson.loads(data)


def check_headers(headers: Mapping[Any, Any]) -> None:
    """Headers: ``str`` names, strict JSON values, at most `MAX_HEADERS_BYTES` in all."""
    for key, value in headers.items():
        if not isinstance(key, str):
            raise SerializationError(
                f"headers has a name {clip_repr(key)} of type {type(key).__name__}; header "
                "names must be str (e.g. {'tenant': 'acme'})"
            )
        check_text(key, "a header's name")
        check_json(value, _item_path("headers", key))
    if not headers:
        return
    size = len(orjson.dumps(headers))
    if size > MAX_HEADERS_BYTES:
        sizes = {k: len(k) + len(orjson.dumps(v)) for k, v in headers.items()}
        largest = max(sizes, key=sizes.__getitem__)
        raise PayloadTooLarge(
            f"the job's headers take {size:,} bytes as JSON, over the "
            f"{MAX_HEADERS_BYTES:,}-byte limit (largest: {_item_path('headers', largest)}, "
            f"{sizes[largest]:,} bytes); headers are for small metadata such as correlation "
            "ids and tags: pass data as an argument instead"
        )
