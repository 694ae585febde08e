"""The app of the "Run due entries now" browser test (``--app seeds_app:app``): one entry
due every minute, so a first run always finds its latest tick due."""

from __future__ import annotations

from conveyor import Conveyor

app = Conveyor()


@app.cron("* * * * *", name="every-minute")
def every_minute() -> None:
    """Due at the start of every minute."""
