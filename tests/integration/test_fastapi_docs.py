"""docs/fastapi.md's complete app, run as a reader would: its two files, under a real uvicorn,
then a worker.

The page's files (``shop/jobs.py``, ``shop/api.py``) are written as they are; its commands
(``uvicorn shop.api:api``, ``conveyor worker``, ``curl -X POST ...``) are run with a free
port, ``--burst`` and httpx.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from tests.integration.cli_support import conveyor_cli
from tests.integration.redis_server import free_port

from .docs_support import FILE_HEADER, read_blocks

try:
    import fastapi  # noqa: F401
except ImportError:  # pragma: no cover - the test extra installs it
    if os.environ.get("CI"):
        raise
    pytest.skip("FastAPI is not installed (the test extra has it)", allow_module_level=True)

PAGE = Path(__file__).resolve().parents[2] / "docs" / "fastapi.md"

pytestmark = pytest.mark.timeout(120)


def write_files(workdir: Path) -> list[str]:
    """The page's ``# path.py`` blocks, written under ``workdir``; their paths."""
    written = []
    for block in read_blocks(PAGE.read_text()):
        header = FILE_HEADER.match(block.text.split("\n", 1)[0]) if block.lang == "python" else None
        if header is not None:
            target = workdir / header.group(1)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.text)
            written.append(header.group(1))
    return written


def test_the_complete_app_enqueues_and_guards_its_dashboard(tmp_path: Path) -> None:
    # Given the page's two files, and a store of the test's own
    assert write_files(tmp_path) == ["shop/jobs.py", "shop/api.py"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(CONVEYOR_URL=f"sqlite:///{tmp_path / 'x.db'}", PYTHONPATH=str(tmp_path))
    port = free_port()
    log = (tmp_path / "uvicorn.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "shop.api:api", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            deadline = time.monotonic() + 60
            while True:
                assert server.poll() is None, (tmp_path / "uvicorn.log").read_text()
                try:
                    client.get("/docs")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "uvicorn did not answer within 60s"
                    time.sleep(0.2)
            # When the page's curl line is sent
            made = client.post("/orders/7", headers={"X-Request-ID": "req-7"})
            assert made.status_code == 200, made.text
            job_id = made.json()["job"]
            # Then the dashboard sends a visitor without the app's login to its login page
            page = client.get("/admin/jobs/")
            assert page.status_code == 303
            assert page.headers["location"] == "/login?next=/admin/jobs/"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        log.close()
    # and the page's worker runs the job the request stored, with the request's id
    run = conveyor_cli(tmp_path, env)
    done = run("worker", "--app", "shop.jobs:app", "--burst", timeout=60)
    assert done.returncode == 0, done.stderr
    assert "receipt for order 7" in done.stdout + done.stderr
    shown = run("jobs", "show", job_id, "--app", "shop.jobs:app", "--json")
    assert shown.returncode == 0, shown.stderr
    assert '"succeeded"' in shown.stdout and "req-7" in shown.stdout
