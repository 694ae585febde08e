"""Take the README's dashboard screenshot: a seeded SQLite store, the dashboard, Chromium.

    .venv/bin/python scripts/screenshot.py [docs/img/dashboard-overview.png]

Seeds a throwaway store with queues at every priority, running, scheduled and dead jobs,
three live workers and an hour of throughput, serves the dashboard with uvicorn on a free
loopback port, and saves the overview as Debian's headless ``chromium`` renders it.
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import uvicorn

from conveyor import Conveyor
from conveyor.backends.base import Backend
from conveyor.clock import SYSTEM_CLOCK, Clock, FakeClock
from conveyor.dashboard import create_dashboard
from conveyor.job import Failure, HistoryPoint, Lease, Routing, WorkerInfo

ROOT = Path(__file__).resolve().parent.parent


def build(url: str, clock: Clock = SYSTEM_CLOCK) -> Conveyor:
    """An app with a few realistic tasks."""
    app = Conveyor(url, clock=clock)

    @app.task(name="mail.send_welcome", queue="mail", priority="high")
    def send_welcome(user_id: int) -> None: ...

    @app.task(name="billing.charge", queue="billing", priority="high")
    def charge(invoice: str, amount_cents: int) -> None: ...

    @app.task(name="reports.build", queue="reports", priority="low")
    def build_report(report: str) -> None: ...

    @app.task(name="images.resize", queue="images")
    def resize(path: str, width: int) -> None: ...

    return app


async def seed(app: Conveyor, backend: Backend, clock: FakeClock) -> None:
    """Fill the store with jobs, workers and an hour of history (jobs enqueued over the
    last half hour, on a clock that is moved forward as they are)."""
    t = app.tasks
    for i in range(30):
        t["mail.send_welcome"].enqueue(i)
    for job in await backend.claim("web-1:4121", Routing(queues=("mail",)), 30, 60):
        assert job.lease_token is not None
        await backend.complete(Lease(job.id, job.lease_token), None)
    clock.advance(300)
    for i in range(42):
        t["mail.send_welcome"].enqueue(1000 + i)
    for i in range(17):
        t["images.resize"].options(priority="high" if i < 5 else "normal").enqueue(
            f"uploads/{i}.jpg", 640
        )
    clock.advance(600)
    for i in range(9):
        t["reports.build"].enqueue(f"daily-{i}")
    clock.advance(400)
    for i in range(6):
        t["billing.charge"].enqueue(f"INV-{2000 + i}", 4900)
    for i in range(12):
        t["mail.send_welcome"].options(delay=600 + 60 * i).enqueue(2000 + i)
    await backend.pause_queue("reports")
    # A few running jobs, and a few that ran out of retries.
    await backend.claim("web-1:4121", Routing(queues=("images",)), 3, 60)
    for queue, error in (
        ("billing", "stripe.error.CardError: Your card was declined."),
        ("billing", "TimeoutError: payment gateway did not answer within 30s"),
        ("images", "PIL.UnidentifiedImageError: cannot identify image file 'uploads/3.jpg'"),
    ):
        [job] = await backend.claim("web-2:4188", Routing(queues=(queue,)), 1, 60)
        assert job.lease_token is not None
        trace = f'Traceback (most recent call last):\n  File "tasks.py", line 42\n{error}'
        await backend.fail(Lease(job.id, job.lease_token), Failure(error, trace))
    now = time.time()
    for n, host in enumerate(("web-1", "web-2", "batch-1")):
        await backend.register_worker(
            WorkerInfo(
                id=f"{host}:{4121 + n * 67}",
                host=host,
                pid=4121 + n * 67,
                started_at=now - 3600 * (n + 1),
                queues=None if n < 2 else ("reports",),
                stats={
                    "processed": 1800 * (3 - n),
                    "failed": 12 - 4 * n,
                    "running": 2 - n % 2,
                    "concurrency": 8,
                    "utilisation": 0.62 - 0.2 * n,
                    "rss_mb": 88 + 9 * n,
                },
            ),
            ttl=3600,
        )
    minute = int(now // 60) * 60
    points = []
    for i in range(60):
        wave = 60 + 35 * math.sin(i / 6.0) + (i * 17) % 11
        failed = 2 + (i * 7) % 5 + (14 if 38 <= i <= 41 else 0)
        points.append(HistoryPoint(minute - 60 * (59 - i), "mail", int(wave * 0.6), failed // 2))
        points.append(
            HistoryPoint(minute - 60 * (59 - i), "images", int(wave * 0.4), failed - failed // 2)
        )
    await backend.record_history(points, keep=86400)


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def main() -> int:
    """Seed, serve, shoot."""
    from playwright.sync_api import sync_playwright

    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs/img/dashboard-overview.png"
    chromium = os.environ.get("CONVEYOR_CHROMIUM") or shutil.which("chromium")
    if chromium is None:
        print("chromium is missing: apt-get install chromium", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/store.db"
        clock = FakeClock(time.time() - 1800)
        app = build(url, clock)

        async def go() -> None:
            await seed(app, await app.open(), clock)
            await app.aclose()

        asyncio.run(go())
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                create_dashboard(build(url)), host="127.0.0.1", port=port, log_level="warning"
            )
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while not server.started:
                if time.monotonic() > deadline:
                    raise RuntimeError("the dashboard did not start within 10 s")
                time.sleep(0.05)
            args = ["--no-sandbox"] if os.geteuid() == 0 else []
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=chromium, headless=True, args=args)
                page = browser.new_page(viewport={"width": 1280, "height": 860})
                page.goto(f"http://127.0.0.1:{port}/")
                page.locator("canvas[data-chart=throughput][data-rendered=true]").wait_for()
                page.locator("canvas[data-chart=failure][data-rendered=true]").wait_for()
                target.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(target), full_page=True)
                browser.close()
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
