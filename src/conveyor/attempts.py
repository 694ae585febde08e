"""A job's whole story: each attempt it had, and the progress its task reported.

Stores keep, on each job, a bounded log of the attempts that ended without succeeding —
a failure that will be retried (``failed``), a failure that made the job dead (``dead``),
a run whose worker vanished so its lease expired (``lost``) — as a JSON array of objects
(`log_entry` makes one). The attempt that succeeded, and the one running now, are not
written: they are read off the job's own fields (``started_at``, ``finished_at``,
``worker_id``), so a successful job costs the store nothing more. `story` puts the two
together for the CLI, the dashboard and `JobHandle`.

Bounds: the last `KEEP` attempts are kept; each entry's error is cut to `MAX_ERROR` and its
traceback (the task's own frames, `conveyor.tracebacks`) to `MAX_TRACEBACK` characters,
keeping the end, where the exception is. The job's ``last_error`` and ``traceback`` keep the
last failure whole, as before.

Progress (`JobProgress`) is what a task reports with ``current_job().progress(done, total,
note)``; the store keeps the latest report with the attempt that made it, and a reader shows
it only while it belongs to the job's current (or final) attempt.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from conveyor.tracebacks import MARKER

#: How many ended attempts a job keeps (the oldest are dropped first).
KEEP = 10
#: Characters of one attempt's error kept in the log.
MAX_ERROR = 1_000
#: Characters of one attempt's traceback kept in the log (its end).
MAX_TRACEBACK = 4_000
#: Characters of a progress note.
MAX_NOTE = 200

Outcome = Literal["succeeded", "failed", "dead", "lost", "running"]
#: Outcomes a store writes into the log; the other two are read off the job's fields.
LOGGED: frozenset[str] = frozenset({"failed", "dead", "lost"})

#: The error a store writes for a ``lost`` attempt.
LOST_ERROR = "lease expired: the worker stopped renewing it (killed, frozen or cut off)"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt of a job: who ran it, when, and how it ended."""

    number: int
    outcome: Outcome
    worker_id: str | None
    started_at: float | None
    ended_at: float | None
    error: str | None = None
    traceback: str | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, when both are known."""
        if self.started_at is None or self.ended_at is None:
            return None
        return max(0.0, self.ended_at - self.started_at)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-friendly view the CLI's ``--json`` and the dashboard's API give."""
        return {
            "attempt": self.number,
            "outcome": self.outcome,
            "worker_id": self.worker_id,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "error": self.error,
            "traceback": self.traceback,
        }


@dataclass(frozen=True, slots=True)
class JobProgress:
    """The latest progress a job's task reported: ``done`` of ``total`` (if known), a note.

    ``attempt`` is the attempt that reported it and ``at`` the store's time of the report.
    """

    done: float
    total: float | None
    note: str | None
    attempt: int
    at: float

    @property
    def fraction(self) -> float | None:
        """``done / total`` clamped to 0..1, or None without a total."""
        if self.total is None or self.total <= 0:
            return None
        return min(1.0, max(0.0, self.done / self.total))

    def describe(self) -> str:
        """One line: ``40/100 (40%) resizing`` or ``40 resizing``."""
        done = _number(self.done)
        text = done if self.total is None else f"{done}/{_number(self.total)}"
        fraction = self.fraction
        if fraction is not None:
            text += f" ({fraction:.0%})"
        return f"{text} {self.note}" if self.note else text

    def to_dict(self) -> dict[str, Any]:
        """The stored and JSON-friendly form."""
        return {
            "done": self.done,
            "total": self.total,
            "note": self.note,
            "attempt": self.attempt,
            "at": self.at,
        }


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def check_progress(
    done: object, total: object, note: object
) -> tuple[float, float | None, str | None]:
    """The values of a progress report, checked; `ValueError` naming what is wrong."""
    done_f = _finite(done)
    if done_f is None:
        raise ValueError(f"progress: done must be a finite number, got {done!r}")
    if done_f < 0:
        raise ValueError(f"progress: done must not be negative, got {done!r}")
    total_f = None if total is None else _finite(total)
    if total is not None and (total_f is None or total_f <= 0):
        raise ValueError(f"progress: total must be a positive finite number or None, got {total!r}")
    if note is not None and not isinstance(note, str):
        raise ValueError(f"progress: note must be a string or None, got {type(note).__name__}")
    if note is not None:
        note = "".join(ch if ch.isprintable() else " " for ch in note)[:MAX_NOTE]
    return done_f, total_f, note or None


def _finite(value: object) -> float | None:
    """``value`` as a finite float, or None: not a number (a bool is not one), NaN,
    infinite, or an integer too large for a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def entry_texts(error: str | None, traceback: str | None) -> tuple[str | None, str | None]:
    """An attempt's error and traceback cut to the log's bounds.

    The traceback keeps the task's own frames (the part before `conveyor.tracebacks.MARKER`),
    and of those the last `MAX_TRACEBACK` characters.
    """
    if error is not None and len(error) > MAX_ERROR:
        error = error[: MAX_ERROR - 1] + "…"
    if traceback is not None:
        traceback = traceback.split(MARKER, 1)[0].rstrip("\n")
        if len(traceback) > MAX_TRACEBACK:
            traceback = "…" + traceback[-(MAX_TRACEBACK - 1) :]
    return error, traceback


def log_entry(
    number: int,
    outcome: str,
    worker_id: str | None,
    started_at: float | None,
    ended_at: float | None,
    error: str | None = None,
    traceback: str | None = None,
) -> dict[str, Any]:
    """One stored log entry (the JSON object a store appends), bounds applied."""
    error, traceback = entry_texts(error, traceback)
    return {
        "attempt": number,
        "outcome": outcome,
        "worker_id": worker_id,
        "started_at": started_at,
        "ended_at": ended_at,
        "error": error,
        "traceback": traceback,
    }


def ended(
    number: int,
    outcome: str,
    worker_id: str | None,
    started_at: float | None,
    ended_at: float,
    error: str | None = None,
    traceback: str | None = None,
) -> Attempt:
    """`log_entry` as an `Attempt` value (stores that keep values, not JSON)."""
    attempt = _attempt(
        log_entry(number, outcome, worker_id, started_at, ended_at, error, traceback)
    )
    if attempt is None:
        raise ValueError(f"not an outcome a store logs: {outcome!r}")
    return attempt


def append_entry(log: str | None, entry: dict[str, Any]) -> str:
    """``log`` (a stored JSON array, or None) with ``entry`` added, the oldest dropped past `KEEP`.

    A damaged log is started afresh rather than failing the job's settle.
    """
    entries = _entries(log)
    entries.append(entry)
    return json.dumps(entries[-KEEP:], separators=(",", ":"), allow_nan=False)


def _entries(log: str | bytes | None) -> list[Any]:
    if not log:
        return []
    try:
        value = json.loads(log)
    except (ValueError, UnicodeDecodeError, RecursionError):  # damage, even very deep
        return []
    return value if isinstance(value, list) else []


def parse_log(log: str | bytes | Sequence[Any] | None) -> tuple[Attempt, ...]:
    """The stored log as `Attempt` values; entries that cannot be read are skipped."""
    entries = log if isinstance(log, list | tuple) else _entries(log)  # type: ignore[arg-type]
    out: list[Attempt] = []
    for item in entries:
        attempt = _attempt(item)
        if attempt is not None:
            out.append(attempt)
    return tuple(out[-KEEP:])


def _attempt(item: object) -> Attempt | None:
    if not isinstance(item, dict):
        return None
    outcome, number = item.get("outcome"), item.get("attempt")
    if outcome not in ("failed", "dead", "lost"):  # `LOGGED`; an unhashable value is no match
        return None
    if not isinstance(number, int) or isinstance(number, bool):
        return None
    return Attempt(
        number=number,
        outcome=outcome,
        worker_id=_text(item.get("worker_id")),
        started_at=_finite(item.get("started_at")),
        ended_at=_finite(item.get("ended_at")),
        error=_text(item.get("error")),
        traceback=_text(item.get("traceback")),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_progress(raw: str | bytes | dict[str, Any] | None) -> JobProgress | None:
    """A stored progress report, or None when there is none or it cannot be read."""
    if not raw:
        return None
    value: object = raw
    if isinstance(raw, str | bytes):
        try:
            value = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):  # damage, even very deep
            return None
    if not isinstance(value, dict):
        return None
    done, total, at = value.get("done"), value.get("total"), _finite(value.get("at"))
    attempt, note = value.get("attempt"), value.get("note")
    try:
        done_f, total_f, note_s = check_progress(done, total, note)
    except ValueError:
        return None
    if not isinstance(attempt, int) or isinstance(attempt, bool) or at is None:
        return None
    return JobProgress(done_f, total_f, note_s, attempt, at)


def progress_json(
    done: float, total: float | None, note: str | None, attempt: int, at: float
) -> str:
    """The stored form of a progress report (stores that build it in Python)."""
    return json.dumps(
        {"done": done, "total": total, "note": note, "attempt": attempt, "at": at},
        separators=(",", ":"),
        allow_nan=False,
    )
