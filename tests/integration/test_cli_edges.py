"""The real ``conveyor`` CLI against bad input, long listings and unreadable records.

Bad input (deep ``--args``, lone surrogates, impossible ports, ``--delay inf``) must end in
one line on stderr and exit 2, never a traceback. Listings stream by pages. Records a store
cannot read are shown (SQLite, damaged with sqlite3; memory, with a placeholder put in).
"""

from __future__ import annotations

import importlib
import json
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.cli_support import Run, conveyor_cli
from typer.testing import CliRunner

from conveyor import Conveyor
from conveyor.backends.memory import MemoryBackend
from conveyor.backends.unreadable import UnreadableRecord, placeholder
from conveyor.cli import app as cli_app
from conveyor.cli.listing import PAGE_SIZE
from conveyor.job import JobQuery, JobRecord

APP_SOURCE = """
from conveyor import Conveyor

app = Conveyor()


@app.task(name="add")
def add(a: int = 0, b: int = 0) -> int:
    return a + b
"""


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "edges.db"


@pytest.fixture
def cli(tmp_path: Path, db: Path) -> Run:
    """Run ``python -m conveyor ARGS...`` on a SQLite file, with the app module at hand."""
    (tmp_path / "edgeapp.py").write_text(APP_SOURCE)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_", "WORKER_"))}
    env = {
        **base,
        "CONVEYOR_URL": f"sqlite:///{db}",
        "PYTHONPATH": os.pathsep.join(p for p in (str(tmp_path), base.get("PYTHONPATH")) if p),
        "CI": "true",
        "COLUMNS": "200",
    }

    return conveyor_cli(tmp_path, env)


def one_line_error(proc: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """The single stderr line of a command that failed cleanly with ``code``."""
    assert proc.returncode == code, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr and "╭" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


# -- 3. bad input on the command line --------------------------------------------------------
def test_args_nested_5000_deep_is_one_line_exit_2(cli: Run) -> None:
    deep = "[" * 5000 + "]" * 5000
    line = one_line_error(cli("enqueue", "add", "--app", "edgeapp:app", "--args", deep))
    assert "--args is nested too deeply" in line and len(line) < 300


def test_args_nested_past_the_limit_but_parseable_is_one_line_exit_2(cli: Run) -> None:
    deep = "[" * 300 + "]" * 300
    line = one_line_error(cli("enqueue", "add", "--app", "edgeapp:app", "--args", deep))
    assert "nested more than 100 levels" in line


@pytest.mark.parametrize(
    ("option", "value", "path"),
    [("--args", '["\\ud800"]', "args[0]"), ("--kwargs", '{"a": "x\\udfff"}', "kwargs['a']")],
)
def test_a_lone_surrogate_in_arguments_is_one_line_exit_2(
    cli: Run, option: str, value: str, path: str
) -> None:
    line = one_line_error(cli("enqueue", "add", "--app", "edgeapp:app", option, value))
    assert path in line and "lone surrogate" in line


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:99999/0",
        "postgresql://user:s3cret@127.0.0.1:99999/conveyor",
        "redis://:s3cret@127.0.0.1:0/0",
        "redis://127.0.0.1:port/0",
    ],
)
@pytest.mark.parametrize("command", [("jobs", "list"), ("enqueue", "add", "--app", "edgeapp:app")])
def test_a_url_with_an_impossible_port_is_one_line_exit_2(
    cli: Run, url: str, command: tuple[str, ...]
) -> None:
    line = one_line_error(cli(*command, "--url", url))
    assert "port" in line and "1 to 65535" in line
    assert "s3cret" not in line


def test_a_sqlite_url_with_a_port_is_one_line_exit_2(cli: Run) -> None:
    line = one_line_error(cli("jobs", "list", "--url", "sqlite://127.0.0.1:99999/x.db"))
    assert "port" in line and "1 to 65535" in line


@pytest.mark.parametrize(
    ("flags", "shown"),
    [
        (("--delay", "inf"), "delay=inf"),
        (("--delay", "nan"), "delay=nan"),
        (("--delay", "-1"), "delay=-1"),
        (("--delay", "1e300"), "9999-12-31"),
        (("--queue", "mail\n"), "queue name 'mail\\n'"),
        (("--unique-key", "k" * 2000), "1,024-byte limit"),
    ],
)
def test_bad_enqueue_options_are_one_line_exit_2(
    cli: Run, db: Path, flags: tuple[str, ...], shown: str
) -> None:
    line = one_line_error(cli("enqueue", "add", "--app", "edgeapp:app", *flags))
    assert shown in line
    assert not db.exists() or _count(db) == 0  # nothing stored


def _count(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        found = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'conveyor_jobs'"
        ).fetchone()[0]
        return int(conn.execute("SELECT count(*) FROM conveyor_jobs").fetchone()[0]) if found else 0


# -- 4. streamed listings ---------------------------------------------------------------------
def _fill(db: Path, n: int) -> list[str]:
    """``n`` jobs in the SQLite file; their ids, newest first."""
    app = Conveyor(f"sqlite:///{db}")

    @app.task(name="add")
    def add(a: int = 0, b: int = 0) -> int:
        return a + b

    ids: list[str] = []
    for start in range(0, n, 500):
        calls = [add.call(i) for i in range(start, min(n, start + 500))]
        ids += [h.id for h in app.enqueue_many(calls)]
    app.close()
    return ids[::-1]


def test_jobs_list_json_streams_a_valid_array_across_pages(cli: Run, db: Path) -> None:
    newest_first = _fill(db, 2 * PAGE_SIZE + 203)
    listed = json.loads(cli("jobs", "list", "--limit", "100000", "--json").stdout)
    assert [j["id"] for j in listed] == newest_first
    limited = json.loads(cli("jobs", "list", "--limit", str(PAGE_SIZE + 7), "--json").stdout)
    assert [j["id"] for j in limited] == newest_first[: PAGE_SIZE + 7]
    lines = cli("jobs", "list", "--limit", "1100", "--jsonl").stdout.splitlines()
    assert [json.loads(line)["id"] for line in lines] == newest_first[:1100]
    assert json.loads(cli("jobs", "list", "--state", "dead", "--json").stdout) == []


def test_jobs_list_table_spans_pages_and_counts_them(cli: Run, db: Path) -> None:
    newest_first = _fill(db, PAGE_SIZE + 20)
    proc = cli("jobs", "list", "--limit", "100000")
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if any(i in line for i in newest_first[:1])]
    assert rows, proc.stdout[:2000]
    positions = [proc.stdout.index(i) for i in newest_first]
    assert positions == sorted(positions)  # newest first, all of them
    assert proc.stdout.rstrip().endswith(f"{PAGE_SIZE + 20} job(s)")


class AdminSpy:
    """The real store's `Admin`, noting the size of every page a listing asks for."""

    def __init__(self, inner: Any, asked: list[int]) -> None:
        self._inner = inner
        self._asked = asked

    async def query(self, query: JobQuery) -> list[JobRecord]:
        self._asked.append(query.limit)
        result: list[JobRecord] = await self._inner.query(query)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class Spy:
    """The real backend, its `Admin` spied on."""

    def __init__(self, inner: Any, asked: list[int]) -> None:
        self._inner = inner
        self.admin = AdminSpy(inner.admin, asked)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.mark.parametrize("command", [("jobs", "list"), ("failed", "list")])
def test_listings_ask_the_backend_for_bounded_pages(
    db: Path, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    from conveyor.cli import common, failed, jobs

    n = 2 * PAGE_SIZE + 50
    _fill(db, n)
    if command[0] == "failed":
        with sqlite3.connect(db) as conn:  # make them all dead, as a worker would
            conn.execute("UPDATE conveyor_jobs SET state = 'dead', last_error = 'x'")
    asked: list[int] = []
    real = common.run_with_backend

    def spying(app: Conveyor, fn: Callable[[Any], Any], **needs: Any) -> Any:
        return real(app, lambda backend: fn(Spy(backend, asked)), **needs)

    monkeypatch.setattr(jobs, "run_with_backend", spying)
    monkeypatch.setattr(failed, "run_with_backend", spying)
    result = CliRunner().invoke(
        cli_app, [*command, "--url", f"sqlite:///{db}", "--limit", "100000", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == n
    assert asked and max(asked) <= PAGE_SIZE
    assert len(asked) == 3  # 500 + 500 + 50: the last, short page ends it


# -- 6. jobs delete ---------------------------------------------------------------------------
def test_jobs_delete_removes_finished_jobs_and_refuses_others(cli: Run) -> None:
    done = cli("enqueue", "add", "--app", "edgeapp:app").stdout.strip()
    waiting = cli("enqueue", "add", "--app", "edgeapp:app").stdout.strip()
    assert cli("jobs", "cancel", done).returncode == 0
    missing = "0" * 26
    proc = cli("jobs", "delete", done, waiting, missing)
    assert proc.returncode == 1
    assert f"deleted 1 job(s): {done}" in proc.stdout
    assert f"job {waiting} is ready, not finished" in proc.stderr
    assert f"conveyor jobs cancel {waiting}" in proc.stderr
    assert f"job {missing} does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert cli("jobs", "show", done).returncode == 1
    assert cli("jobs", "show", waiting).returncode == 0
    assert cli("jobs", "cancel", waiting).returncode == 0
    again = cli("jobs", "delete", waiting)
    assert again.returncode == 0 and again.stderr == ""


# -- 7. unreadable records --------------------------------------------------------------------
def test_sqlite_unreadable_record_is_shown_not_a_traceback(cli: Run, db: Path) -> None:
    good = cli("enqueue", "add", "--app", "edgeapp:app", "--args", "[1, 2]").stdout.strip()
    bad = cli("enqueue", "add", "--app", "edgeapp:app", "--args", "[3, 4]").stdout.strip()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE conveyor_jobs SET headers = '{not json' WHERE id = ?", (bad,))
    shown = cli("jobs", "show", bad)
    assert shown.returncode == 0, shown.stderr
    assert "unreadable record" in shown.stdout and "'headers'" in shown.stdout
    assert "raw stored fields" in shown.stdout and "{not json" in shown.stdout
    data = json.loads(cli("jobs", "show", bad, "--json").stdout)
    assert data["unreadable"] and data["raw"]["headers"] == "{not json"
    assert data["args"] is None
    listed = cli("jobs", "list")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if bad in line)
    assert "<unreadable>" in row
    assert good in listed.stdout
    rows = json.loads(cli("jobs", "list", "--json").stdout)
    assert {r["id"]: bool(r["unreadable"]) for r in rows} == {good: False, bad: True}


@pytest.fixture
def memory_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Any]]:
    """An app module on memory:// (``--app`` spec, module) imported once for the runner."""
    name = f"edges_memory_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(APP_SOURCE.replace("Conveyor()", 'Conveyor("memory://")'))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module(name)
    yield f"{name}:app", module
    sys.modules.pop(name, None)


def _with_placeholder(app: Conveyor) -> str:
    """Store one good job and one unreadable placeholder in ``app``'s fresh memory store."""
    app.tasks["add"].enqueue(1, 2)
    backend = app.backend
    assert isinstance(backend, MemoryBackend)
    stored = {
        "id": "bad-1",
        "task": "add",
        "state": "dead",
        "headers": "{not json",
        "payload": b"\xff\xfe",
        "created_at": "1796600000.5",
    }
    record = placeholder("bad-1", stored, UnreadableRecord("bad-1", "headers", "not JSON"))
    with backend._s.lock:  # the store's own structures: no public way to damage a record
        backend._s.jobs[record.id] = record
        backend._s.order[record.id] = next(backend._s.seq)
    return record.id


def test_memory_unreadable_record_in_show_list_and_failed(memory_app: tuple[str, Any]) -> None:
    spec, module = memory_app
    runner = CliRunner()

    def run(*args: str) -> Any:
        _with_placeholder(module.app)  # each command closes the app, emptying memory://
        return runner.invoke(cli_app, [*args, "--app", spec])

    shown = run("jobs", "show", "bad-1")
    assert shown.exit_code == 0, shown.output
    assert "unreadable record" in shown.stdout
    assert "unreadable_record: job bad-1" in shown.stdout and "conveyor jobs delete" in shown.stdout
    assert "raw stored fields" in shown.stdout and "\\xff\\xfe" in shown.stdout
    listed = run("jobs", "list")
    row = next(line for line in listed.stdout.splitlines() if "bad-1" in line)
    assert "<unreadable> add" in row
    failed = run("failed", "list")
    row = next(line for line in failed.stdout.splitlines() if "bad-1" in line)
    assert "<unreadable>" in row and "unreadable_record" in row
    as_json = json.loads(run("failed", "list", "--json").stdout)
    assert as_json[0]["unreadable"].startswith("unreadable_record")
    deleted = run("jobs", "delete", "bad-1")
    assert deleted.exit_code == 0 and "deleted 1 job(s)" in deleted.stdout
