"""A job's story in the real ``conveyor jobs show`` and ``jobs list``, on a SQLite file.

The attempts are made with the store's own verbs (claim, fail, report_progress, complete),
as a worker makes them; the CLI runs as a subprocess (`tests.integration.cli_support`).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from tests.integration.cli_support import Run, conveyor_cli

from conveyor import Conveyor
from conveyor.job import Failure, Lease, Routing

LONG = "ValueError: " + "z" * 500
MARKUP = "KeyError: [/] [bold]not markup[/bold]"


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'story.db'}"


@pytest.fixture
def run(tmp_path: Path) -> Run:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_", "WORKER_"))}
    return conveyor_cli(tmp_path, {**env, "COLUMNS": "250"})


async def _claim(app: Conveyor, worker: str) -> Lease:
    [job] = await (await app.open()).claim(worker, Routing(), 1, 30.0)
    assert job.lease_token is not None
    return Lease(job.id, job.lease_token)


def make_story(url: str, *, succeed: bool) -> str:
    """A job failed on ``w-one`` (a long error) and ``w-two`` (rich markup in its error),
    then on ``w-three`` reporting progress, then succeeded there if ``succeed``; its id."""
    app = Conveyor(url)

    @app.task(name="resize", retries=5)
    def resize(n: int) -> None:
        """Resize."""

    async def story() -> str:
        job_id = resize.enqueue(1).id
        store = await app.open()
        for worker, error in (("w-one", LONG), ("w-two", MARKUP)):
            lease = await _claim(app, worker)
            failure = Failure(error, f"Traceback of {worker}\nValueError", retry_in=0.0)
            assert await store.fail(lease, failure)
        lease = await _claim(app, "w-three")
        assert await store.progress.report_progress(lease, 4, 10, "resizing")
        if succeed:
            assert await store.complete(lease, None)
        await app.aclose()
        return job_id

    return asyncio.run(story())


def attempt_rows(output: str) -> list[list[str]]:
    """The attempts table's rows, as cells (the table after the ``attempts`` title)."""
    table = output.split("\nattempts", 1)[1]
    rows = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if cells and cells[0].isdigit():
            rows.append(cells)
    return rows


def test_a_job_failed_twice_then_succeeded_shows_three_attempts(url: str, run: Run) -> None:
    job_id = make_story(url, succeed=True)

    shown = run("jobs", "show", job_id, "--url", url)

    assert shown.returncode == 0, shown.stderr
    rows = attempt_rows(shown.stdout)
    assert [row[:3] for row in rows] == [
        ["1", "failed", "w-one"],
        ["2", "failed", "w-two"],
        ["3", "succeeded", "w-three"],
    ]
    assert all(row[3] != "-" and row[4].endswith("s") for row in rows)  # started, duration
    # the long error is cut to one short line; the markup is printed as it is
    assert rows[0][5].startswith("ValueError: zzz") and rows[0][5].endswith("…")
    assert len(rows[0][5]) < 100
    assert rows[1][5] == MARKUP and rows[2][5] == ""
    # the final report of the succeeded attempt is its progress
    assert "progress 4/10 (40%) resizing · reported " in shown.stdout
    # without --full-traceback, only the last failure's traceback
    assert "Traceback of w-one" not in shown.stdout


def test_full_traceback_prints_each_attempts_traceback(url: str, run: Run) -> None:
    job_id = make_story(url, succeed=True)

    shown = run("jobs", "show", job_id, "--url", url, "--full-traceback")

    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    first, second = text.index("attempt 1 traceback (failed)"), text.index("attempt 2 traceback")
    assert first < text.index("Traceback of w-one") < second < text.index("Traceback of w-two")


def test_json_carries_the_attempt_history_and_progress(url: str, run: Run) -> None:
    job_id = make_story(url, succeed=True)

    shown = run("jobs", "show", job_id, "--url", url, "--json")

    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    history = data["attempt_history"]
    assert [(a["attempt"], a["outcome"], a["worker_id"]) for a in history] == [
        (1, "failed", "w-one"),
        (2, "failed", "w-two"),
        (3, "succeeded", "w-three"),
    ]
    assert set(history[0]) == {
        "attempt",
        "outcome",
        "worker_id",
        "started_at",
        "ended_at",
        "error",
        "traceback",
    }
    assert history[0]["error"] == LONG  # the log keeps up to 2,000 characters
    assert history[1]["traceback"] == "Traceback of w-two\nValueError"
    assert history[2]["error"] is None and history[2]["ended_at"] == data["finished_at"]
    assert data["progress"] == {
        "done": 4,
        "total": 10,
        "note": "resizing",
        "attempt": 3,
        "at": data["progress"]["at"],
    }


def test_a_running_job_shows_its_progress_and_the_listing_a_progress_column(
    url: str, run: Run
) -> None:
    job_id = make_story(url, succeed=False)

    shown = run("jobs", "show", job_id, "--url", url)
    listed = run("jobs", "list", "--state", "running", "--url", url)

    assert shown.returncode == 0 and listed.returncode == 0, shown.stderr + listed.stderr
    assert "progress 4/10 (40%) resizing" in shown.stdout
    assert [row[:3] for row in attempt_rows(shown.stdout)][-1] == ["3", "running", "w-three"]
    header = next(line for line in listed.stdout.splitlines() if "attempts" in line)
    assert "progress" in header
    assert "4/10 (40%) resizing" in listed.stdout
    # a listing with no progress to show has no such column
    dead = run("jobs", "list", "--state", "dead", "--url", url)
    assert dead.returncode == 0 and "progress" not in dead.stdout
