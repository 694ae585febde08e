"""The dashboard at its edges: out-of-range page offsets and records a store cannot read.

A huge or negative offset is a 400 with a clear message from the API and the nearest page
from the HTML pages, never a 500. An unreadable record is listed and shown (what is wrong,
its raw fields) instead of failing the page.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor import Conveyor
from conveyor.backends.memory import MemoryBackend
from conveyor.backends.unreadable import UnreadableRecord, placeholder
from conveyor.dashboard import create_dashboard
from conveyor.dashboard.data import MAX_OFFSET

from .conftest import XSS, build_app, client_for

HUGE = str(10**30)


@pytest.fixture
async def sqlite_client(tmp_path: Path) -> AsyncIterator[tuple[Conveyor, httpx.AsyncClient]]:
    """The seeded-style app on a SQLite file, and a client on its dashboard."""
    app = build_app(f"sqlite:///{tmp_path / 'dash.db'}")
    dashboard = create_dashboard(app)
    try:
        async with client_for(dashboard) as c:
            yield app, c
    finally:
        await dashboard.state.dashboard.close()
        await app.aclose()


# -- 5. offsets -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("offset", "message"),
    [
        (HUGE, f"is out of range: give 0 to {MAX_OFFSET}"),
        ("-1", f"offset=-1 is out of range: give 0 to {MAX_OFFSET}"),
        ("9" * 5000, "is not a whole number"),
        ("abc", "offset='abc' is not a whole number"),
    ],
)
async def test_api_refuses_an_offset_out_of_range_with_400(
    client: httpx.AsyncClient, seeded: dict[str, Any], offset: str, message: str
) -> None:
    response = await client.get("/api/jobs", params={"offset": offset})
    assert response.status_code == 400
    error = response.json()["error"]
    assert message in error
    assert len(error) < 200  # a huge value is clipped, not echoed back


@pytest.mark.parametrize("path", ["/jobs", "/failed"])
@pytest.mark.parametrize("offset", [HUGE, "9" * 5000, str(MAX_OFFSET + 1), "-1", "-" + HUGE])
async def test_pages_clamp_an_offset_out_of_range(
    client: httpx.AsyncClient, seeded: dict[str, Any], path: str, offset: str
) -> None:
    response = await client.get(path, params={"offset": offset})
    assert response.status_code == 200
    if offset.startswith("-"):  # clamped to the first page: the newest jobs are there
        assert seeded["dead"] in response.text


@pytest.mark.parametrize("offset", ["²", "1.5", "x"])
async def test_pages_refuse_an_offset_that_is_not_a_number_with_400(
    client: httpx.AsyncClient, offset: str
) -> None:
    response = await client.get("/jobs", params={"offset": offset})
    assert response.status_code == 400
    assert "is not a whole number" in response.text


@pytest.mark.parametrize("path", ["/jobs", "/failed", "/api/jobs"])
async def test_huge_offsets_on_sqlite_are_not_a_500(
    sqlite_client: tuple[Conveyor, httpx.AsyncClient], path: str
) -> None:
    app, client = sqlite_client
    await app.tasks["mail.send"].enqueue_async("a@example.com")
    for offset in (HUGE, str(MAX_OFFSET), "-1"):
        response = await client.get(path, params={"offset": offset})
        assert response.status_code in (200, 400), (offset, response.text[:300])
        if path == "/api/jobs" and offset == str(MAX_OFFSET):
            assert response.json()["jobs"] == []


# -- 7. unreadable records ---------------------------------------------------------------------
def _insert_placeholder(app: Conveyor) -> str:
    backend = app.backend
    assert isinstance(backend, MemoryBackend)
    stored = {
        "id": "bad-1",
        "task": "reports.build",
        "state": "dead",
        "queue": "reports",
        "headers": "{not json",
        "payload": b"\xff" + XSS.encode(),
        "created_at": "oops",
    }
    record = placeholder("bad-1", stored, UnreadableRecord("bad-1", "headers", "not JSON"))
    with backend._s.lock:  # the store's own structures: no public way to damage a record
        backend._s.jobs[record.id] = record
        backend._s.order[record.id] = next(backend._s.seq)
    return record.id


async def test_unreadable_record_is_marked_in_lists(
    app: Conveyor, client: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    bad = _insert_placeholder(app)
    for path in ("/jobs", "/failed"):
        page = await client.get(path)
        assert page.status_code == 200
        row = page.text[page.text.index(f'data-job="{bad}"') :].split("</tr>")[0]
        assert "unreadable" in row and "unreadable_record: job bad-1" in row
        assert seeded["dead"] in page.text  # the others are still listed
    api = (await client.get("/api/jobs")).json()["jobs"]
    flags = {j["id"]: j["unreadable"] for j in api}
    assert flags[bad].startswith("unreadable_record") and flags[seeded["ready"]] is None


async def test_unreadable_record_page_shows_the_problem_and_raw_fields_escaped(
    app: Conveyor, client: httpx.AsyncClient
) -> None:
    bad = _insert_placeholder(app)
    page = await client.get(f"/jobs/{bad}")
    assert page.status_code == 200
    assert 'id="unreadable"' in page.text and "cannot be read" in page.text
    assert 'id="raw"' in page.text and "{not json" in page.text
    assert "\\xff" in page.text  # bytes that are not UTF-8, shown escaped
    assert XSS not in page.text and "&lt;script&gt;" in page.text
    assert 'id="args"' not in page.text  # no pretend-decoded arguments
    detail = (await client.get(f"/api/jobs/{bad}")).json()
    assert detail["unreadable"].startswith("unreadable_record")
    assert detail["raw"]["headers"] == "{not json"
    assert detail["args"] is None and detail["actions"] == ["retry", "delete"]


async def test_unreadable_sqlite_row_is_shown_not_a_500(
    sqlite_client: tuple[Conveyor, httpx.AsyncClient], tmp_path: Path
) -> None:
    app, client = sqlite_client
    good = (await app.tasks["mail.send"].enqueue_async("a@example.com")).id
    bad = (await app.tasks["mail.send"].enqueue_async("b@example.com")).id
    with sqlite3.connect(tmp_path / "dash.db") as conn:
        conn.execute("UPDATE conveyor_jobs SET headers = '{not json' WHERE id = ?", (bad,))
    page = await client.get(f"/jobs/{bad}")
    assert page.status_code == 200, page.text[:500]
    assert 'id="unreadable"' in page.text and "{not json" in page.text
    listing = await client.get("/jobs")
    assert listing.status_code == 200
    row = listing.text[listing.text.index(f'data-job="{bad}"') :].split("</tr>")[0]
    assert "unreadable" in row
    assert f'data-job="{good}"' in listing.text
