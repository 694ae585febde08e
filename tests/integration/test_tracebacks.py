"""A failed job's traceback starts at the task's own frames; Conveyor's are one step away.

A real worker runs the failing jobs on SQLite; `conveyor jobs show` and the dashboard's job
page read them back.
"""

from __future__ import annotations

import asyncio
import traceback
from pathlib import Path

import httpx
from typer.testing import CliRunner

from conveyor import Conveyor, Priority, Worker
from conveyor.cli import app as cli
from conveyor.dashboard import create_dashboard
from conveyor.tracebacks import MARKER, split, task_view

HERE = Path(__file__).name


def files(text: str) -> list[str]:
    """The file of every frame line in a traceback, in order."""
    return [line.split('"')[1] for line in text.splitlines() if line.strip().startswith('File "')]


def check_price(n: int) -> None:
    raise ValueError(f"no price for {n}")


def failed_jobs(tmp_path: Path) -> tuple[str, str, str]:
    """A store with two dead jobs: one failing in its own code, one whose own bad enqueue
    Conveyor refused; their ids."""
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    app = Conveyor(url)

    @app.task(name="tb.price", retries=0)
    async def price(n: int) -> None:
        check_price(n)

    @app.task(name="tb.chain", retries=0)
    def chain() -> None:
        price.enqueue("one", "two")  # too many arguments: refused inside Conveyor

    ids = price.enqueue(7).id, chain.enqueue().id
    assert asyncio.run(Worker(app, burst=True, reaper=False).run()) == 0
    return url, *ids


def test_the_stored_traceback_starts_at_the_task(tmp_path: Path) -> None:
    url, price_id, chain_id = failed_jobs(tmp_path)
    app = Conveyor(url)
    # Given a job that failed in its own code
    record = asyncio.run(app.backend.get(price_id))
    assert record is not None and record.traceback is not None
    short, whole = split(record.traceback)
    # Then its traceback opens at the task, then the helper that raised, and no Conveyor
    # frame comes before them
    assert [Path(f).name for f in files(short)] == [HERE, HERE]
    assert "in price" in short and "in check_price" in short
    assert "ValueError: no price for 7" in short
    assert "frames of Conveyor's and the event loop's hidden" in short
    # And the whole traceback keeps the executor's frames
    assert whole is not None and "executor.py" in whole and "ValueError" in whole
    # Given a job whose enqueue Conveyor refused inside the task
    record = asyncio.run(app.backend.get(chain_id))
    assert record is not None and record.traceback is not None
    short, _ = split(record.traceback)
    shown = [Path(f).name for f in files(short)]
    # Then it opens at the task, and keeps Conveyor's frames after it: where the error is
    assert shown[0] == HERE and len(shown) > 1 and HERE not in shown[1:]
    assert "BadArguments" in short


def test_an_error_with_no_task_frame_is_shown_whole() -> None:
    try:
        Priority.parse("urgent")
    except Exception as exc:
        text = task_view(exc)
        assert text == "".join(traceback.format_exception(exc))
    assert MARKER not in text


def test_jobs_show_gives_the_task_view_and_the_whole_one_on_request(tmp_path: Path) -> None:
    url, price_id, _ = failed_jobs(tmp_path)
    short = CliRunner().invoke(cli, ["jobs", "show", price_id, "--url", url])
    whole = CliRunner().invoke(cli, ["jobs", "show", price_id, "--url", url, "--full-traceback"])
    assert short.exit_code == 0 and whole.exit_code == 0, short.output + whole.output
    assert "check_price" in short.output and "executor.py" not in short.output
    assert "--full-traceback shows Conveyor's own frames" in short.output
    assert "executor.py" in whole.output and "check_price" in whole.output


async def test_the_job_page_shows_the_task_view_with_the_whole_one_behind_a_click(
    tmp_path: Path,
) -> None:
    url, price_id, _ = await asyncio.to_thread(failed_jobs, tmp_path)
    dashboard = create_dashboard(Conveyor(url))
    transport = httpx.ASGITransport(app=dashboard)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        page = await client.get(f"/jobs/{price_id}")
    assert page.status_code == 200, page.text
    html = page.text
    shown = html.split('id="traceback">', 1)[1].split("</pre>", 1)[0]
    assert "check_price" in shown and "executor.py" not in shown
    behind = html.split('<details id="traceback-whole">', 1)[1].split("</details>", 1)[0]
    assert "executor.py" in behind and "check_price" in behind
