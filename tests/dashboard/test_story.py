"""A job's story on the dashboard: the progress bar, the attempts table and the API's JSON.

Each test runs on the memory store and on a real SQLite file; the attempts are made with
the store's own verbs (claim, fail, report_progress), as a worker makes them.
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from conveyor import Conveyor
from conveyor.attempts import MAX_ERROR
from conveyor.backends.base import Backend
from conveyor.job import Failure, Lease, Routing

from .conftest import XSS, build_app

WORKERS = ("w-one", "w-two", f"w-{XSS}")


@pytest.fixture(params=["memory", "sqlite"])
async def app(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Conveyor]:
    """The dashboard tests' app (see conftest), on each store in turn."""
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'story.db'}"
    app = build_app(url)
    try:
        yield app
    finally:
        await app.aclose()


async def claim(backend: Backend, worker: str) -> Lease:
    [job] = await backend.claim(worker, Routing(queues=("reports",)), 1, 30.0)
    assert job.lease_token is not None
    return Lease(job.id, job.lease_token)


async def failed_twice_then_running(app: Conveyor) -> tuple[str, Lease]:
    """A job whose two first attempts failed (XSS in their texts) and whose third is
    running; its id and the running attempt's lease."""
    job_id = app.tasks["reports.build"].options(retries=5).enqueue("r").id
    backend = await app.open()
    for n, worker in enumerate(WORKERS[:2], start=1):
        lease = await claim(backend, worker)
        failure = Failure(f"ValueError: bad {n} {XSS}", f"Traceback {n}\n  {XSS}", retry_in=0.0)
        assert await backend.fail(lease, failure)
    return job_id, await claim(backend, WORKERS[2])


async def test_the_job_page_shows_each_attempt_with_its_traceback_collapsed(
    app: Conveyor, client: httpx.AsyncClient
) -> None:
    job_id, _ = await failed_twice_then_running(app)

    page = (await client.get(f"/jobs/{job_id}")).text

    table = page.split('id="attempts">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<tr data-attempt="(\d+)" data-outcome="(\w+)">', table)
    assert rows == [("1", "failed"), ("2", "failed"), ("3", "running")]
    # Each logged traceback sits in its own closed <details>; the running one has none.
    details = re.findall(r"<details id=\"attempt-(\d)-traceback\"( open)?>", table)
    assert details == [("1", ""), ("2", "")]
    assert "Traceback 2" in table.split('id="attempt-2-traceback"', 1)[1]
    # Every text a task or worker wrote is escaped, never markup.
    assert XSS not in page
    assert table.count(html.escape(XSS)) == 5  # two errors, two tracebacks, one worker id
    assert "w-one" in table and "w-two" in table


async def test_the_progress_bar_shows_the_current_attempts_report(
    app: Conveyor, client: httpx.AsyncClient
) -> None:
    job_id, lease = await failed_twice_then_running(app)
    page = (await client.get(f"/jobs/{job_id}")).text
    assert 'id="progress"' not in page  # nothing reported yet

    backend = await app.open()
    assert await backend.progress.report_progress(lease, 40, 100, f"resizing {XSS}")
    page = (await client.get(f"/jobs/{job_id}")).text

    bar = page.split('id="progress">', 1)[1].split("</div>", 1)[0]
    assert '<progress max="1" value="0.4"' in bar
    assert f"40/100 (40%) resizing {html.escape(XSS)}" in bar
    assert "by attempt 3" in bar
    assert XSS not in page


async def test_a_report_without_a_total_is_an_indeterminate_bar(
    app: Conveyor, client: httpx.AsyncClient
) -> None:
    job_id, lease = await failed_twice_then_running(app)
    assert await (await app.open()).progress.report_progress(lease, 7, None, None)

    bar = (await client.get(f"/jobs/{job_id}")).text.split('id="progress">', 1)[1]
    assert re.search(r"<progress max=\"1\" aria-label", bar)  # no value: indeterminate
    assert '<span class="progress-text">7</span>' in bar


async def test_the_api_job_carries_the_attempts_and_the_progress(
    app: Conveyor, client: httpx.AsyncClient
) -> None:
    job_id, lease = await failed_twice_then_running(app)
    backend = await app.open()
    assert await backend.progress.report_progress(lease, 1, 4, "quarter")

    job = (await client.get(f"/api/jobs/{job_id}")).json()

    history = job["attempt_history"]
    assert [(a["attempt"], a["outcome"], a["worker_id"]) for a in history] == [
        (1, "failed", "w-one"),
        (2, "failed", "w-two"),
        (3, "running", WORKERS[2]),
    ]
    assert history[0]["error"] == f"ValueError: bad 1 {XSS}"
    assert history[1]["traceback"] == f"Traceback 2\n  {XSS}"
    assert all(a["duration"] is not None and a["duration"] >= 0 for a in history[:2])
    assert history[2]["ended_at"] is None and history[2]["duration"] is None
    progress = job["progress"]
    assert (progress["done"], progress["total"], progress["note"]) == (1, 4, "quarter")
    assert (progress["attempt"], progress["fraction"], progress["text"]) == (
        3,
        0.25,
        "1/4 (25%) quarter",
    )
    # and the OpenAPI document describes both
    schema = (await client.get("/api/openapi.json")).json()["components"]["schemas"]
    assert {"attempt_history", "progress"} <= set(schema["JobDetail"]["properties"])


async def test_a_retry_hides_the_previous_attempts_progress(
    app: Conveyor, client: httpx.AsyncClient
) -> None:
    job_id, lease = await failed_twice_then_running(app)
    backend = await app.open()
    assert await backend.progress.report_progress(lease, 5, 10, "half")
    assert await backend.fail(lease, Failure("boom", None, retry_in=0.0))
    # Until the next attempt starts, the last one's final report is the job's progress;
    assert (await client.get(f"/api/jobs/{job_id}")).json()["progress"]["note"] == "half"
    await claim(backend, "w-four")

    # once it has, that report belongs to the past.
    job = (await client.get(f"/api/jobs/{job_id}")).json()
    page = (await client.get(f"/jobs/{job_id}")).text
    assert job["progress"] is None and 'id="progress"' not in page
    assert [a["outcome"] for a in job["attempt_history"]] == ["failed"] * 3 + ["running"]


async def test_a_long_error_is_cut_in_the_table(app: Conveyor, client: httpx.AsyncClient) -> None:
    job_id = app.tasks["reports.build"].enqueue("r").id
    backend = await app.open()
    long = "E" * (MAX_ERROR * 2)
    assert await backend.fail(await claim(backend, "w"), Failure(long, None))

    page = (await client.get(f"/jobs/{job_id}")).text
    cell = page.split('id="attempts">', 1)[1].split('<td class="err">', 1)[1].split("</td>")[0]
    assert "E" * 299 + "…" in cell and "E" * 301 not in cell
    # the job's own error is still shown whole, under Error
    assert long in page.split('id="error">', 1)[1]


async def test_the_running_jobs_listing_has_a_progress_column_only_with_progress(
    app: Conveyor, client: httpx.AsyncClient
) -> None:
    job_id, lease = await failed_twice_then_running(app)
    listing = (await client.get("/jobs?state=running")).text
    assert "<th>progress</th>" not in listing

    backend = await app.open()
    assert await backend.progress.report_progress(lease, 3, 4, XSS)
    listing = (await client.get("/jobs?state=running")).text
    row = listing.split(f'<tr data-job="{job_id}">', 1)[1].split("</tr>", 1)[0]
    assert "<th>progress</th>" in listing
    assert '<progress max="1" value="0.75"' in row
    assert f"3/4 (75%) {html.escape(XSS)}" in row and XSS not in listing
    [summary] = (await client.get("/api/jobs?state=running")).json()["jobs"]
    assert summary["progress"]["text"] == f"3/4 (75%) {XSS}"
