"""Records a store holds but cannot read: how they are named, quarantined and shown.

A store is shared by many versions of many programs, so one damaged record (garbage JSON in
``headers``, text where a number belongs, bytes that are not UTF-8) must cost one job, never
the store. Every backend follows the same rules:

* **Decode each record on its own.** A claim, a read or a listing that meets a record it
  cannot decode carries on with the others.
* **Quarantine what cannot be read.** A claim moves such a job to ``dead`` with an error that
  starts with `UNREADABLE` and names the job id and the field (`unreadable_error`). Its raw
  stored content is kept as it is, for ``conveyor jobs show ID`` and the dashboard.
* **Show it, do not hide it.** ``get`` and ``query`` return a damaged record as a
  `placeholder` `JobRecord`: the fields that could be read, safe stand-ins for the others,
  ``unreadable`` saying what is wrong and ``raw`` holding every stored field as text.
* **Index damage is repaired or skipped** with a logged error naming the entry, never fatal.

Backends raise `UnreadableRecord` from their decoders (`field` wraps one field's decoding)
and catch it where they handle one record.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from conveyor.job import JobRecord, Priority, State

#: The reason at the start of a quarantined job's ``last_error``.
UNREADABLE = "unreadable_record"

#: Longest raw field value kept in a placeholder's ``raw`` (the store keeps it whole).
RAW_PREVIEW_CHARS = 4096

T = TypeVar("T")


class UnreadableRecord(ValueError):
    """A stored job record that cannot be decoded: which job, which field, and why."""

    def __init__(self, job_id: str, field: str, detail: str) -> None:
        self.job_id = job_id
        self.field = field
        self.detail = detail
        super().__init__(unreadable_error(job_id, field, detail))


def unreadable_error(job_id: str, field: str, detail: str) -> str:
    """The ``last_error`` of a quarantined job: reason, job, field, cause and what to do."""
    return (
        f"{UNREADABLE}: job {job_id}: the stored field {field!r} cannot be read ({detail}); "
        "the job was quarantined in the dead-letter store with its raw content kept. "
        f"Inspect it with `conveyor jobs show {job_id}`, then delete it "
        f"(`conveyor jobs delete {job_id}` or the dashboard) or repair the record and run "
        f"`conveyor failed retry {job_id}`"
    )


def field(job_id: str, name: str, decode: Callable[[Any], T], raw: Any) -> T:
    """``decode(raw)``, or `UnreadableRecord` naming ``job_id`` and field ``name``."""
    try:
        return decode(raw)
    except UnreadableRecord:
        raise
    except Exception as exc:
        raise UnreadableRecord(job_id, name, _describe(exc, raw)) from exc


def text(raw: Any) -> str:
    """A stored text field: ``str`` as is, ``bytes`` as strict UTF-8."""
    if isinstance(raw, str):
        raw.encode("utf-8")  # a lone surrogate (from surrogateescape) is damage too
        return raw
    if isinstance(raw, (bytes, bytearray, memoryview)):
        return bytes(raw).decode("utf-8")
    raise TypeError(f"expected text, found {type(raw).__name__}")


def number(raw: Any) -> float:
    """A stored real number: a finite ``int``/``float``, or its text."""
    if isinstance(raw, bool):
        raise TypeError("expected a number, found a boolean")
    value = float(raw) if isinstance(raw, (int, float)) else float(text(raw))
    if not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number")
    return value


def integer(raw: Any) -> int:
    """A stored integer: an ``int``, or its text (``"3"``, not ``"3.5"``)."""
    if isinstance(raw, bool):
        raise TypeError("expected an integer, found a boolean")
    if isinstance(raw, int):
        return raw
    return int(text(raw))


def raw_view(stored: Mapping[Any, Any]) -> dict[str, str]:
    """Every stored field as printable text (for ``conveyor jobs show`` and the dashboard)."""
    out: dict[str, str] = {}
    for key, value in stored.items():
        name = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
        if isinstance(value, (bytes, bytearray, memoryview)):
            shown = bytes(value).decode("utf-8", "backslashreplace")
        elif value is None:
            continue
        else:
            shown = str(value).encode("utf-8", "backslashreplace").decode("utf-8")
        if len(shown) > RAW_PREVIEW_CHARS:
            shown = shown[:RAW_PREVIEW_CHARS] + f"... [{len(shown) - RAW_PREVIEW_CHARS} more]"
        out[name] = shown
    return out


def placeholder(
    job_id: str,
    stored: Mapping[Any, Any],
    problem: UnreadableRecord | str,
    *,
    left_out: Mapping[str, Any] | None = None,
) -> JobRecord:
    """A `JobRecord` standing for a record that cannot be read, for reads and listings.

    Fields that decode are kept; the others get harmless stand-ins (task and queue
    ``"<unreadable>"``, times 0). ``unreadable`` says what is wrong; ``raw`` has the record.
    ``left_out`` is what the store means by a field its records leave out (the Redis
    store's lean record: ``max_retries`` absent is 3): used for a field that is absent,
    never shown in ``raw``, which holds only what is stored.
    """
    view = raw_view(stored)
    meaning = left_out or {}

    def pick(name: str, decode: Callable[[Any], T], default: T) -> T:
        value = _lookup(stored, name)
        if value is None:
            value = meaning.get(name)
        if value is None:
            return default
        try:
            return decode(value)
        except Exception:  # noqa: BLE001 - a stand-in for a damaged field
            return default

    state = pick("state", lambda v: State(text(v)), State.DEAD)
    priority = pick("priority", lambda v: Priority(integer(v)), Priority.NORMAL)
    return JobRecord(
        id=job_id,
        task=pick("task", text, "<unreadable>"),
        queue=pick("queue", text, "<unreadable>"),
        priority=priority,
        state=state,
        payload=b"",
        headers={},
        attempts=pick("attempts", integer, 0),
        max_retries=pick("max_retries", integer, 0),
        timeout=pick("timeout", number, 0.0),
        run_at=pick("run_at", number, 0.0),
        created_at=pick("created_at", number, 0.0),
        updated_at=pick("updated_at", number, 0.0),
        recoveries=pick("recoveries", integer, 0),
        last_error=pick("last_error", text, None),
        failed_at=pick("failed_at", number, None),
        unreadable=str(problem),
        raw=view,
    )


def _lookup(stored: Mapping[Any, Any], name: str) -> Any:
    if name in stored:
        return stored[name]
    return stored.get(name.encode())


def _describe(exc: BaseException, raw: Any) -> str:
    shown = raw if not isinstance(raw, (bytes, bytearray)) else bytes(raw)
    preview = repr(shown)
    if len(preview) > 80:
        preview = preview[:77] + "..."
    return f"{type(exc).__name__}: {exc}; stored value {preview}"
