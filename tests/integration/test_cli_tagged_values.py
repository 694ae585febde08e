"""`conveyor jobs show` on a job whose arguments and result hold tagged values (datetime,
Decimal): shown as the JSON they are stored in, never a crash."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from typer.testing import CliRunner

from conveyor import Conveyor, Worker
from conveyor.cli import app as cli


def test_jobs_show_prints_tagged_values_as_stored(tmp_path: Path) -> None:
    # Given a finished job with a datetime argument and a Decimal result
    url = f"sqlite:///{tmp_path / 'x.db'}"
    app = Conveyor(url)

    @app.task(name="price")
    def price(at: datetime) -> Decimal:
        return Decimal("12.50")

    job_id = price.enqueue(datetime(2030, 1, 2, 9, 30, tzinfo=UTC)).id
    assert asyncio.run(Worker(app, burst=True, reaper=False).run()) == 0
    # When it is shown, as JSON and as text
    as_json = CliRunner().invoke(cli, ["jobs", "show", job_id, "--json", "--url", url])
    text = CliRunner().invoke(cli, ["jobs", "show", job_id, "--url", url])
    # Then both show the stored JSON
    assert as_json.exit_code == 0, as_json.output
    shown = json.loads(as_json.stdout)
    assert shown["args"] == [{"$datetime": "2030-01-02T09:30:00+00:00"}]
    assert shown["result"] == {"$decimal": "12.50"}
    assert text.exit_code == 0, text.output
    assert "2030-01-02T09:30:00" in text.output
