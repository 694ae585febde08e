"""The app the browser tests run a real worker for (``--app browser_app:app``).

``flaky`` fails while its flag file is missing and succeeds once it exists, so a test can
make a job dead, create the file, click Retry, and watch the same job succeed.
"""

from __future__ import annotations

from pathlib import Path

from conveyor import Conveyor


def build(url: str | None = None) -> Conveyor:
    """The app on ``url`` (default: ``CONVEYOR_URL``)."""
    app = Conveyor(url)

    @app.task(name="flaky", queue="default", retries=0)
    def flaky(flag: str) -> str:
        """Fail until the file ``flag`` exists."""
        if not Path(flag).exists():
            raise RuntimeError(f"flag file missing: {flag} <script>alert(1)</script>")
        return "ok"

    @app.cron("0 * * * *", name="hourly-flaky", args=("/nonexistent",))
    def hourly(flag: str) -> None:
        """A cron entry for the scheduled page."""

    return app


app = build()
