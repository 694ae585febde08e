"""The dashboard in a real headless Chromium, against a real store and worker.

The server is the real ``conveyor dashboard`` command and the worker the real
``conveyor worker``, each a subprocess stopped (by its own PID) when its tests end. Most
tests share one SQLite stack; the retry test, which changes its store, gets a stack of its
own on SQLite, Redis and PostgreSQL in turn (the servers skip or fail like the contract
suite's).
Skipped locally when Debian's ``chromium`` or Playwright is missing; failed when ``CI`` is
set, since ``scripts/test.sh`` installs both.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from tests.contract.support import BACKEND_URLS

from conveyor.backends import create_backend
from conveyor.job import Failure, HistoryPoint, Lease, Routing, State

from .browser_app import build

T = TypeVar("T")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing, and CI is set: scripts/test.sh installs it")
    pytest.skip(f"{what} is missing (scripts/test.sh installs it)")


def chromium_path() -> str:
    """Debian's chromium; skips (or fails under CI) when missing."""
    path = os.environ.get("CONVEYOR_CHROMIUM") or shutil.which("chromium")
    if path is None:
        _missing("chromium")
    assert path is not None
    return path


def wait_for(condition: Callable[[], T], *, timeout: float, what: str) -> T:
    """Poll ``condition`` until it is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a thread of its own: Playwright's sync API keeps an event loop
    running in the test's thread, where ``asyncio.run`` (used by sync helpers) refuses."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result(timeout=30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Stack:
    """A SQLite store with a worker and the dashboard on it."""

    url: str
    base: str
    flag: Path
    dead_id: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def run(self, coro: Callable[[Any], Any]) -> Any:
        """Run ``coro(backend)`` on a fresh handle on the store, in a thread of its own
        (Playwright's sync API keeps an event loop running in the test's thread)."""

        async def go() -> Any:
            backend = create_backend(self.url)
            await backend.open()
            try:
                return await coro(backend)
            finally:
                await backend.close()

        return in_thread(asyncio.run, go())

    def state(self, job_id: str) -> State | None:
        async def read(backend: Any) -> State | None:
            job = await backend.get(job_id)
            return None if job is None else job.state

        result: State | None = self.run(read)
        return result


def _conveyor(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "WORKER_SLEEP": "0.1", "PYTHONPATH": str(ROOT / "src")}
    env.pop("CONVEYOR_APP", None)
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "conveyor", *args],
            cwd=HERE,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def running_stack(tmp: Path, url: str) -> Iterator[Stack]:
    """Given a store at ``url`` with one dead job (its flag file missing) and an hour of
    history, a worker and ``conveyor dashboard`` (live refresh every second) running on it."""
    flag = tmp / "flag"
    job_id = in_thread(_enqueue, url, str(flag))
    port = free_port()
    stack = Stack(url=url, base=f"http://127.0.0.1:{port}", flag=flag, dead_id=job_id)

    async def seed(backend: Any) -> None:
        now = int(time.time() // 60) * 60
        points = [
            HistoryPoint(now - 60 * i, "default", 20 + (i * 7) % 13, (i * 3) % 5)
            for i in range(1, 40)
        ]
        await backend.telemetry.record_history(points, keep=86400)

    stack.run(seed)
    try:
        stack.processes.append(
            _conveyor(
                ["worker", "--app", "browser_app:app", "--url", url, "--concurrency", "2"],
                tmp / "worker.log",
            )
        )
        wait_for(lambda: stack.state(job_id) is State.DEAD, timeout=20, what="the job to die")
        stack.processes.append(
            _conveyor(
                [
                    "dashboard",
                    "--app",
                    "browser_app:app",
                    "--url",
                    url,
                    "--port",
                    str(port),
                    "--refresh",
                    "1",
                    "--log-level",
                    "warning",
                ],
                tmp / "dashboard.log",
            )
        )
        wait_for(lambda: _answers(stack.base + "/"), timeout=20, what="the dashboard to answer")
        yield stack
    finally:
        for process in stack.processes:
            process.terminate()
        for process in stack.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The stack most tests share, on SQLite (``CONVEYOR_BROWSER_STORE=redis`` or
    ``postgres`` runs them all on that server instead)."""
    tmp = tmp_path_factory.mktemp("dashboard")
    store = os.environ.get("CONVEYOR_BROWSER_STORE", "sqlite")
    with running_stack(tmp, BACKEND_URLS[store](tmp)) as stack:
        yield stack


@pytest.fixture(params=["sqlite", "redis", "postgres"])
def own_stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """A stack of the test's own on each real store in turn (for tests that change it)."""
    with running_stack(tmp_path, BACKEND_URLS[request.param](tmp_path)) as stack:
        yield stack


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's), driven by Playwright."""
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright")
    args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=executable, headless=True, args=args)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page that records console errors and uncaught exceptions."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.errors = []
    page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("dialog", lambda d: d.accept())
    try:
        yield page
    finally:
        context.close()


@pytest.mark.parametrize(
    ("path", "heading"),
    [
        ("/", "Queues"),
        ("/workers", "Workers"),
        ("/jobs", "Jobs"),
        ("/failed", "Failed jobs"),
        ("/scheduled", "Scheduled"),
        ("/api/openapi.json", None),
    ],
)
def test_each_page_loads_without_errors(
    stack: Stack, page: Any, path: str, heading: str | None
) -> None:
    response = page.goto(stack.base + path)
    assert response.status == 200
    if heading is not None:
        assert page.locator("h1, h2").filter(has_text=heading).count() >= 1
    assert page.errors == []


def test_workers_page_shows_the_live_worker(stack: Stack, page: Any) -> None:
    page.goto(stack.base + "/workers")
    assert page.locator("table.grid tbody tr").count() >= 1


def test_job_detail_escapes_the_error(stack: Stack, page: Any) -> None:
    page.goto(f"{stack.base}/jobs/{stack.dead_id}")
    error = page.locator("#error")
    assert "<script>alert(1)</script>" in error.inner_text()
    assert page.locator("main script").count() == 0
    assert page.locator("#traceback").count() == 1
    assert page.errors == []


def test_charts_render(stack: Stack, page: Any) -> None:
    page.goto(stack.base + "/")
    chart = page.locator("canvas[data-chart=throughput][data-rendered=true]")
    chart.wait_for()
    assert int(chart.get_attribute("data-points")) >= 30
    # Then the bars are really drawn: count the canvas's succeeded-green pixels.
    green = page.evaluate(
        """() => {
          const c = document.querySelector("canvas[data-chart=throughput]");
          const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
          let n = 0;
          for (let i = 0; i < d.length; i += 4) {
            if (d[i] === 0x1f && d[i + 1] === 0x9d && d[i + 2] === 0x55) n++;
          }
          return n;
        }"""
    )
    assert green > 500
    page.locator("canvas[data-chart=failure][data-rendered=true]").wait_for()
    assert page.errors == []


def test_retry_a_failed_job_with_a_click_and_see_it_succeed(own_stack: Stack, page: Any) -> None:
    stack = own_stack
    # Given the dead job is listed on the failed page, and its cause is fixed,
    page.goto(stack.base + "/failed")
    row = page.locator(f"tr[data-job='{stack.dead_id}']")
    assert row.count() == 1
    stack.flag.touch()
    # When Retry is clicked,
    row.get_by_role("button", name="Retry").click()
    page.wait_for_url("**/failed?notice=*")
    assert "retried 1 job" in page.locator(".notice").inner_text()
    # Then the worker runs it again, and the job page turns to succeeded by live refresh.
    page.goto(f"{stack.base}/jobs/{stack.dead_id}")
    page.locator("h1 .state-succeeded").wait_for()
    assert stack.state(stack.dead_id) is State.SUCCEEDED
    assert page.errors == []


def test_pause_and_resume_from_the_overview(stack: Stack, page: Any) -> None:
    page.goto(stack.base + "/")
    row = page.locator("tr[data-queue=default]")
    row.get_by_role("button", name="Pause").click()
    page.locator("tr[data-queue=default] .badge-paused").wait_for()
    page.locator("tr[data-queue=default]").get_by_role("button", name="Resume").click()
    page.locator("tr[data-queue=default] button", has_text="Pause").wait_for()
    assert page.locator("tr[data-queue=default] .badge-paused").count() == 0
    assert page.errors == []


def test_pages_refresh_live_without_reloading(stack: Stack, page: Any) -> None:
    page.goto(stack.base + "/")
    before = int(page.locator("[data-total=scheduled]").inner_text())
    page.evaluate("() => { window.notReloaded = true; }")
    # When a job is enqueued elsewhere, Then the overview's count follows within a refresh.
    in_thread(_enqueue, stack.url, str(stack.flag), 3600.0)
    page.wait_for_function(
        f"() => document.querySelector('[data-total=scheduled]').textContent === '{before + 1}'"
    )
    assert page.evaluate("() => window.notReloaded") is True
    assert page.errors == []


def _enqueue(url: str, flag: str, delay: float | None = None) -> str:
    """Enqueue one ``flaky`` job; its id."""
    app = build(url)
    try:
        return app.tasks["flaky"].options(delay=delay).enqueue(flag).id
    finally:
        app.close()


# -- a job's story: its attempts and its progress bar ----------------------------------------
STORY_WORKERS = ("w-one", "w-two", "w-three")


@dataclass
class Story:
    """A dashboard (no worker) on a store holding one job failed twice, now running on its
    third attempt with progress reported; the running attempt's lease."""

    stack: Stack
    lease: Lease

    def report(self, done: float, note: str) -> None:
        async def report(backend: Any) -> None:
            assert await backend.progress.report_progress(self.lease, done, 10, note)

        self.stack.run(report)


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    tmp = tmp_path_factory.mktemp("story")
    url = BACKEND_URLS[os.environ.get("CONVEYOR_BROWSER_STORE", "sqlite")](tmp)
    job_id = in_thread(_enqueue, url, str(tmp / "flag"))
    port = free_port()
    stack = Stack(url=url, base=f"http://127.0.0.1:{port}", flag=tmp / "flag", dead_id=job_id)

    async def make(backend: Any) -> Lease:
        # Given two attempts that failed on two workers, and a third running on another
        for n, worker in enumerate(STORY_WORKERS, start=1):
            [job] = await backend.claim(worker, Routing(tasks=("flaky",)), 1, 300.0)
            lease = Lease(job.id, job.lease_token)
            if n == 3:
                assert await backend.progress.report_progress(lease, 3, 10, "resizing")
                return lease
            tb = f'Traceback (most recent call last):\n  File "task.py", line {n}\nattempt {n}'
            failure = Failure(f"RuntimeError: attempt {n} <script>alert(1)</script>", tb, 0.0)
            assert await backend.fail(lease, failure)
        raise AssertionError("unreachable")

    lease = stack.run(make)
    args = ["dashboard", "--app", "browser_app:app", "--url", url, "--port", str(port)]
    stack.processes.append(
        _conveyor([*args, "--refresh", "1", "--log-level", "warning"], tmp / "dashboard.log")
    )
    try:
        wait_for(lambda: _answers(stack.base + "/"), timeout=20, what="the dashboard to answer")
        yield Story(stack, lease)
    finally:
        for process in stack.processes:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_the_job_page_shows_its_attempts_a_traceback_and_its_progress(
    story: Story, page: Any
) -> None:
    page.goto(f"{story.stack.base}/jobs/{story.stack.dead_id}")

    rows = page.locator("#attempts tbody tr")
    assert [rows.nth(i).get_attribute("data-outcome") for i in range(rows.count())] == [
        "failed",
        "failed",
        "running",
    ]
    assert "w-two" in rows.nth(1).inner_text()
    assert "<script>alert(1)</script>" in rows.nth(0).locator("td.err").inner_text()
    # The traceback is collapsed until its summary is clicked.
    traceback = page.locator("#attempt-1-traceback pre")
    assert not traceback.is_visible()
    page.locator("#attempt-1-traceback summary").click()
    assert traceback.is_visible()
    assert 'File "task.py", line 1' in traceback.inner_text()
    # The progress bar shows the running attempt's report.
    bar = page.locator("#progress progress")
    assert float(bar.get_attribute("value")) == pytest.approx(0.3)
    assert "3/10 (30%) resizing" in page.locator("#progress").inner_text()
    assert page.locator("main script").count() == 0
    assert page.errors == []


def test_the_progress_bar_follows_live_refresh_and_an_open_traceback_stays_open(
    story: Story, page: Any
) -> None:
    page.goto(f"{story.stack.base}/jobs/{story.stack.dead_id}")
    page.locator("#attempt-2-traceback summary").click()
    page.evaluate("() => { window.notReloaded = true; }")
    try:
        # When the task reports further progress,
        story.report(7, "almost there")
        # Then the bar follows within a refresh, without reloading the page,
        page.wait_for_function(
            "() => document.querySelector('#progress progress').getAttribute('value') === '0.7'"
        )
        assert "7/10 (70%) almost there" in page.locator("#progress").inner_text()
        assert page.evaluate("() => window.notReloaded") is True
        # and the traceback the user opened is still open.
        assert page.locator("#attempt-2-traceback").get_attribute("open") is not None
        assert page.locator("#attempt-2-traceback pre").is_visible()
        assert page.errors == []
    finally:
        story.report(3, "resizing")
