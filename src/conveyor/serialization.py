"""JSON for arguments, headers and results: strict, plus a few everyday types, tagged.

Arguments and results may hold JSON's own types: ``None``, ``bool``, ``int`` (64-bit),
finite ``float``, ``str``, ``list``/``tuple`` and ``dict`` with ``str`` keys; and five
everyday values JSON lacks, each stored as a one-key object that names its type::

    datetime  {"$datetime": "2030-01-01T09:30:00+02:00"}   (naive or aware; keeps the offset)
    date      {"$date": "2030-01-01"}
    time      {"$time": "09:30:00"}
    UUID      {"$uuid": "6f1c...-..."}
    Decimal   {"$decimal": "19.99"}

Decoding follows the tag, not the task's annotations: a value comes back as the type it
was sent as, in arguments, nested in lists and dicts, and in results alike. The payload
never names a class to import, so nothing else (dataclasses, models, sets, bytes) goes in:
it is refused at the call site with the path of the offending value, never turned into a
string. A user's own one-key object whose key is a tag (``{"$date": ...}``, as MongoDB's
extended JSON writes) is wrapped as ``{"$dict": {...}}`` and comes back unchanged.
Payloads stored before tags existed are plain JSON and decode as they always did.

Headers stay strict JSON (no tags): they are metadata read by logs, stores and dashboards.
No pickle, ever.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

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

#: How each tag's text turns back into its value. Every parser raises `ValueError` (or,
#: for `Decimal`, an `ArithmeticError`) on text it cannot read.
_TAGS: dict[str, Callable[[str], Any]] = {
    "$datetime": datetime.fromisoformat,
    "$date": date.fromisoformat,
    "$time": time.fromisoformat,
    "$uuid": UUID,
    "$decimal": Decimal,
}
#: Wraps a user's one-key object whose key is a tag, so it is not read as a tagged value.
_ESCAPE = "$dict"
_RESERVED = frozenset((*_TAGS, _ESCAPE))
#: Every tag starts an object key with these bytes: a payload without them has no tags.
_TAG_MARK = b'"$'
_PLAIN = "str, int, float, bool, None, list, dict"
_RICH = f"{_PLAIN}, or datetime, date, time, UUID, Decimal"

#: What to do with a value that is neither a JSON scalar nor a list, tuple or dict.
_Leaf = Callable[[Any, str], Any]


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
    _walk(value, path, 0, set(), _refuse)


def tag_values(value: Any, path: str) -> Any:
    """``value`` as JSON-ready data: everyday types tagged, or `SerializationError`.

    ``path`` names the value in error messages (``args[0]``, ``kwargs['when']``).
    """
    return _walk(value, path, 0, set(), _tag)


def untag(value: Any) -> Any:
    """Decoded JSON with its tagged objects turned back into values (see the module doc).

    A tag whose text cannot be read (a hand-written or pre-tag payload) stays the object
    it is, so a payload that decoded before still decodes.
    """
    if isinstance(value, list):
        return [untag(item) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, inner),) = value.items()
        if key == _ESCAPE and isinstance(inner, dict):
            return {k: untag(v) for k, v in inner.items()}
        parse = _TAGS.get(key)
        if parse is not None and isinstance(inner, str):
            try:
                return parse(inner)
            except (ValueError, ArithmeticError):
                return value
    return {k: untag(v) for k, v in value.items()}


def _tag(value: Any, path: str) -> dict[str, str]:
    # datetime before date: a datetime is a date too.
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, time):
        return {"$time": value.isoformat()}
    if isinstance(value, UUID):
        return {"$uuid": str(value)}
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    raise SerializationError(
        f"{path} is a {type(value).__name__}, which cannot be stored as JSON; pass plain "
        f"data ({_RICH}) and convert it back inside the task"
    )


def _refuse(value: Any, path: str) -> Any:
    raise SerializationError(
        f"{path} is a {type(value).__name__}, which is not JSON; pass plain data "
        f"({_PLAIN}) and convert it back inside the task"
    )


def _walk(value: Any, path: str, depth: int, seen: set[int], leaf: _Leaf) -> Any:
    """``value`` checked (and its leaves converted by ``leaf``), as JSON-ready data."""
    if _is_scalar(value, path):
        return value
    if depth >= _MAX_DEPTH:
        raise SerializationError(
            f"{path} is nested more than {_MAX_DEPTH} levels deep (is it recursive?)"
        )
    if isinstance(value, (list, tuple)):
        _enter(value, path, seen)
        items = [_walk(item, f"{path}[{i}]", depth + 1, seen, leaf) for i, item in enumerate(value)]
        seen.discard(id(value))
        return items
    if isinstance(value, dict):
        return _walk_dict(value, path, depth, seen, leaf)
    return leaf(value, path)


def _is_scalar(value: Any, path: str) -> bool:
    """Whether ``value`` is a JSON scalar; `SerializationError` if it is one JSON cannot hold."""
    if isinstance(value, str):
        check_text(value, path)
        return True
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise SerializationError(
                f"{path} is an integer too large for JSON ({value}); pass it as a string"
            )
        return True
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SerializationError(
                f"{path} is {value!r}, which strict JSON cannot represent; pass None or a string"
            )
        return True
    return False


def _walk_dict(
    value: dict[Any, Any], path: str, depth: int, seen: set[int], leaf: _Leaf
) -> dict[str, Any]:
    _enter(value, path, seen)
    out: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise SerializationError(
                f"{path} has a key {clip_repr(key)} of type {type(key).__name__}; "
                "JSON object keys must be str"
            )
        check_text(key, f"{path} key")
        out[key] = _walk(item, _item_path(path, key), depth + 1, seen, leaf)
    seen.discard(id(value))
    if len(out) == 1 and not _RESERVED.isdisjoint(out):
        return {_ESCAPE: out}
    return out


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
    # The usual call passes a few plain scalars: those need no walk (nor a new list).
    plain_args: tuple[Any, ...] | list[Any] = args
    for arg in args:
        if not _plain(arg):
            plain_args = [tag_values(arg, f"args[{i}]") for i, arg in enumerate(args)]
            break
    plain_kwargs: dict[str, Any] = {}
    for name, arg in kwargs.items():
        check_text(name, "a keyword argument's name")
        plain_kwargs[name] = arg if _plain(arg) else tag_values(arg, _item_path("kwargs", name))
    data = orjson.dumps({"args": plain_args, "kwargs": plain_kwargs})
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"the job's arguments take {len(data):,} bytes, over the {max_bytes:,}-byte limit "
            f"(largest: {_largest(plain_args, plain_kwargs)}); store big data elsewhere and "
            "pass a reference, or raise MAX_PAYLOAD_BYTES"
        )
    return data


def _plain(value: Any) -> bool:
    """Whether ``value`` is a scalar JSON holds as it is (what `tag_values` would return
    unchanged without a walk): ASCII text, a 64-bit integer, a finite float, a bool, None."""
    kind = type(value)
    if kind is str:
        return value.isascii()  # type: ignore[no-any-return]
    if kind is int:
        return _INT_MIN <= value <= _INT_MAX  # type: ignore[no-any-return]
    if kind is float:
        return value - value == 0.0  # type: ignore[no-any-return]  # false for inf, nan
    return value is None or kind is bool


def _largest(args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]) -> str:
    sizes = {f"args[{i}]": len(orjson.dumps(a)) for i, a in enumerate(args)}
    sizes.update({f"kwargs[{k!r}]": len(orjson.dumps(v)) for k, v in kwargs.items()})
    name = max(sizes, key=sizes.__getitem__)
    return f"{name}, {sizes[name]:,} bytes"


def decode_payload(data: bytes) -> tuple[list[Any], dict[str, Any]]:
    """Decode stored arguments, tagged values as their types; `SerializationError` if corrupt."""
    args, kwargs = decode_payload_json(data)
    if _TAG_MARK not in data:
        return args, kwargs  # plain JSON (every payload stored before tags): nothing to turn
    try:
        return [untag(a) for a in args], {k: untag(v) for k, v in kwargs.items()}
    except RecursionError:
        raise SerializationError("the stored payload is nested too deeply to read") from None


def decode_payload_json(data: bytes) -> tuple[list[Any], dict[str, Any]]:
    """Stored arguments as the JSON they are kept in, tags left as objects.

    For showing a job (CLI, dashboard, JSON output), where a `datetime` would not print.
    """
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
    """Encode one value (a task's result) as JSON, tags included, of at most ``max_bytes``."""
    data = orjson.dumps(tag_values(value, path))
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"{path} takes {len(data):,} bytes as JSON, over the {max_bytes:,}-byte limit "
            f"(it starts {clip_repr(data[:_CLIP].decode('utf-8', 'replace'))}); store large "
            "data elsewhere (a file, a bucket, a table) and return a reference to it"
        )
    return data


def decode_value(data: bytes) -> Any:
    """Decode a value stored by `encode_value`, tagged values as their types."""
    value = orjson.loads(data)
    return untag(value) if _TAG_MARK in data else value


def decode_value_json(data: bytes) -> Any:
    """A value stored by `encode_value` as the JSON it is kept in, for showing it."""
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
