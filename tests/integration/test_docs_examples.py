"""The README and the quickstart, run as a reader would run them.

Every code block of each page runs in order in a scratch directory, with the real CLI, against
a SQLite store (`docs_support` says how each kind of block is run). Then the jobs the page
enqueued are checked: each ends in the state the page leads a reader to expect. A block that
is deliberately not run carries ``<!-- not-run: reason -->``, and `NOT_RUN` lists those
reasons, so skipping another block is a visible change to this file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .docs_support import DocError, PageRun, read_blocks

ROOT = Path(__file__).resolve().parents[2]

#: The reasons given by each page's not-run markers, in page order.
NOT_RUN = {
    "README.md": ["installs into .venv, then runs the demo or every test and check"],
    "docs/quickstart.md": [
        "installs into a new .venv; the test runs the checkout already installed"
    ],
}

#: The quickstart's tasks as they stood when `resize_image` returned a name it never set.
BROKEN_QUICKSTART = """
```python
# myproject/jobs.py
from conveyor import Conveyor

app = Conveyor()


@app.task(queue="jobs", timeout=120)
def resize_image(path: str, width: int) -> str:  # plain def: runs in a thread
    ...
    return new_path
```

```python
from myproject.jobs import resize_image

resize_image.enqueue("/tmp/a.png", width=200)
```

```bash
conveyor worker --app myproject.jobs:app --concurrency 10
```
"""


def run_page(page: str, workdir: Path) -> PageRun:
    """Run every block of ``page`` in ``workdir``; check that only the marked ones were left out
    and that a worker ran."""
    run = PageRun(workdir)
    run.run_page(ROOT / page)
    assert run.skipped == NOT_RUN[page]
    assert any(cmd.startswith("conveyor worker") for cmd in run.ran), run.ran
    return run


@pytest.mark.timeout(240)
def test_every_readme_example_runs_and_its_jobs_end_as_described(tmp_path: Path) -> None:
    # Given the README's tasks, its enqueue example, worker and commands, run in order
    run = run_page("README.md", tmp_path)

    # Then both emails were sent, and the delayed sync waits for its time
    assert run.states() == {
        "myproject.jobs.send_email": ["succeeded", "succeeded"],
        "myproject.jobs.sync_product": ["scheduled"],
    }


@pytest.mark.timeout(240)
def test_every_quickstart_example_runs_and_its_jobs_succeed(tmp_path: Path) -> None:
    # Given the quickstart's blocks, run in order
    run = run_page("docs/quickstart.md", tmp_path)

    # Then both jobs succeeded, and resize_image returned the path it promises
    assert run.states() == {
        "myproject.jobs.resize_image": ["succeeded"],
        "myproject.jobs.send_welcome": ["succeeded"],
    }
    [job] = [j for j in run.jobs() if j["task"] == "myproject.jobs.resize_image"]
    assert json.loads(job["result"]) == "/tmp/a-200.png"

    # and the page's words hold: enqueue.py printed that job's id and `ready`, and
    # `conveyor jobs show <ID>` showed its result
    assert run.printed["python enqueue.py"] == f"{job['id']} ready\n"
    assert "/tmp/a-200.png" in run.printed[f"conveyor jobs show {job['id']}"]


def test_the_pages_mark_exactly_the_blocks_they_do_not_run() -> None:
    for page, reasons in NOT_RUN.items():
        blocks = read_blocks((ROOT / page).read_text())
        assert [b.not_run for b in blocks if b.not_run is not None] == reasons, page


@pytest.mark.timeout(240)
def test_a_task_that_returns_an_undefined_name_is_caught(tmp_path: Path) -> None:
    # Given the quickstart's old resize_image, which returns a name it never assigned
    page = tmp_path / "page.md"
    page.write_text(BROKEN_QUICKSTART)
    run = PageRun(tmp_path)

    # When the page runs: every command succeeds, the worker serves and stops
    run.run_page(page)

    # Then the job did not succeed, and the check on states sees it
    [job] = run.jobs()
    assert job["state"] != "succeeded"
    assert "new_path" in job["last_error"]
    assert run.states() != {"myproject.jobs.resize_image": ["succeeded"]}


@pytest.mark.parametrize(
    "line",
    [
        "pip install conveyor",
        "python -m pip install conveyor",
        "python3 -m venv .venv && .venv/bin/pip install -e .",
        "conveyor status | grep dead",
    ],
)
def test_a_command_other_than_conveyor_or_a_script_must_be_marked(
    line: str, tmp_path: Path
) -> None:
    # Given a shell block, not marked, with a command the harness does not run
    page = tmp_path / "page.md"
    page.write_text(f"```bash\n{line}\n```\n")

    # Then the page is refused before anything runs
    run = PageRun(tmp_path)
    with pytest.raises(DocError, match=r"not-run|one command a line"):
        run.run_page(page)
    assert run.ran == []

    # and once marked, the block is skipped with its reason
    page.write_text(f"<!-- not-run: installs -->\n```bash\n{line}\n```\n")
    run = PageRun(tmp_path)
    run.run_page(page)
    assert run.skipped == ["installs"]
    assert run.ran == []


def test_a_block_in_a_language_it_cannot_run_must_be_marked(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```toml\n[tool.conveyor]\n```\n")
    with pytest.raises(DocError, match="toml"):
        PageRun(tmp_path).run_page(page)


def test_a_python_example_that_fails_fails_the_page(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```python\nraise SystemExit('broken example')\n```\n")
    with pytest.raises(DocError, match="broken example"):
        PageRun(tmp_path).run_page(page)


def test_a_marker_away_from_a_block_and_an_unclosed_block_are_refused() -> None:
    with pytest.raises(DocError, match="marker"):
        read_blocks("<!-- not-run: why -->\n\nSome text.\n```bash\nconveyor status\n```\n")
    with pytest.raises(DocError, match="never closed"):
        read_blocks("```python\nprint(1)\n")
