"""`conveyor.attempts`: the stored attempt log and progress reports, read back tolerantly."""

from __future__ import annotations

import json

import pytest

from conveyor.attempts import (
    KEEP,
    LOGGED,
    MAX_ERROR,
    MAX_NOTE,
    MAX_TRACEBACK,
    JobProgress,
    append_entry,
    check_progress,
    entry_texts,
    log_entry,
    parse_log,
    parse_progress,
    progress_json,
)
from conveyor.tracebacks import MARKER

DEEP = "[" * 100_000 + "]" * 100_000


def test_append_keeps_the_newest_entries_as_a_json_array() -> None:
    log = None
    for n in range(KEEP + 5):
        log = append_entry(log, log_entry(n, "failed", "w1", 1.5, 2.5, f"e{n}", None))
    assert log is not None
    entries = json.loads(log)
    assert [e["attempt"] for e in entries] == list(range(5, KEEP + 5))
    assert [a.number for a in parse_log(log)] == list(range(5, KEEP + 5))
    assert parse_log(log)[0].duration == 1.0


@pytest.mark.parametrize(
    "damaged", ["", "not json", "{}", '"text"', "42", DEEP, b"\xff\xfe", "[1, null, []]"]
)
def test_a_damaged_log_reads_as_empty_and_restarts_on_append(damaged: str | bytes) -> None:
    assert parse_log(damaged) == ()
    fresh = append_entry(
        damaged if isinstance(damaged, str) else None, log_entry(1, "lost", None, None, 3.0)
    )
    assert [a.outcome for a in parse_log(fresh)] == ["lost"]


def test_entries_that_cannot_be_read_are_skipped_and_the_rest_kept() -> None:
    raw = json.dumps(
        [
            {"outcome": [], "attempt": 1},
            {"outcome": {}, "attempt": 1},
            {"outcome": "succeeded", "attempt": 1},
            {"outcome": "failed", "attempt": True},
            {"outcome": "failed", "attempt": 2, "started_at": "x", "ended_at": float("inf")},
            {"outcome": "lost", "attempt": 3, "started_at": 10**400, "ended_at": -(10**400)},
            "garbage",
        ]
    )
    failed, lost = parse_log(raw)
    assert (failed.number, failed.outcome) == (2, "failed")
    assert failed.started_at is None and failed.ended_at is None
    # an integer too large for a float is no time either
    assert (lost.number, lost.started_at, lost.ended_at) == (3, None, None)
    assert {"failed", "dead", "lost"} == LOGGED


def test_texts_are_cut_keeping_the_tracebacks_end_and_the_task_frames_only() -> None:
    error, tb = entry_texts(
        "e" * (MAX_ERROR * 3), "x" * (MAX_TRACEBACK * 2) + "Boom" + MARKER + "ours"
    )
    assert error is not None and len(error) == MAX_ERROR
    assert tb is not None and len(tb) == MAX_TRACEBACK and tb.endswith("Boom")
    assert entry_texts("short", "tb" + MARKER + "ours") == ("short", "tb")


def test_progress_round_trips_and_describes_itself() -> None:
    raw = progress_json(4.0, 10.0, "resizing", 2, 1700000000.123456)
    progress = parse_progress(raw)
    assert progress == JobProgress(4.0, 10.0, "resizing", 2, 1700000000.123456)
    assert progress.describe() == "4/10 (40%) resizing"
    assert JobProgress(2.5, None, None, 1, 0.0).describe() == "2.5"
    assert JobProgress(12, 10, None, 1, 0.0).fraction == 1.0


@pytest.mark.parametrize(
    "damaged",
    [
        "",
        "nope",
        "[]",
        DEEP,
        '{"done": -1, "attempt": 1, "at": 1}',
        '{"done": 1, "at": 1}',
        '{"done": 1%s, "attempt": 1, "at": 1}' % ("0" * 400),
        '{"done": 1, "total": 1%s, "attempt": 1, "at": 1}' % ("0" * 400),
        '{"done": 1, "attempt": 1, "at": 1%s}' % ("0" * 400),
    ],
)
def test_a_damaged_progress_reads_as_none(damaged: str) -> None:
    assert parse_progress(damaged) is None


@pytest.mark.parametrize(
    ("done", "total", "note", "word"),
    [
        (float("nan"), None, None, "done"),
        (-1, None, None, "negative"),
        ("3", None, None, "done"),
        (True, None, None, "done"),
        (1, 0, None, "total"),
        (1, float("inf"), None, "total"),
        (1, None, 5, "note"),
        (10**400, None, None, "done"),
        (1, 10**400, None, "total"),
    ],
)
def test_bad_progress_values_are_refused_naming_them(
    done: object, total: object, note: object, word: str
) -> None:
    with pytest.raises(ValueError, match=word):
        check_progress(done, total, note)


def test_a_note_is_cut_and_made_printable() -> None:
    _, _, note = check_progress(1, None, "a\nb" + "c" * MAX_NOTE * 2)
    assert note is not None and note.startswith("a b") and len(note) == MAX_NOTE
