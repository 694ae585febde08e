"""The Django project's long-running processes: ``manage.py conveyor run`` and its workers,
and the dashboard served by a real ASGI server (uvicorn) behind Django's login."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from tests.integration.django_support import PROJECT, DjangoProject, sqlite_project  # noqa: F401
from tests.integration.redis_server import free_port

pytestmark = pytest.mark.timeout(300)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_run_starts_workers_that_set_django_up(
    sqlite_project: DjangoProject,  # noqa: F811
) -> None:
    # Given `manage.py conveyor run` supervising one worker process
    run_dir = sqlite_project.run_dir
    log = (run_dir.parent / "run.log").open("wb")
    supervisor = subprocess.Popen(
        [sys.executable, "manage.py", "conveyor", "run", "--run-dir", str(run_dir)],
        cwd=PROJECT,
        env=sqlite_project.env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        # When a job that uses the ORM is enqueued
        sqlite_project.script(
            "from shop.jobs import receipt\n"
            "from shop.models import Order\n"
            "receipt.enqueue(Order.objects.create(email='supervised@example.com').id)\n"
        )
        # Then the supervised worker (a child process started as `python -m conveyor
        # worker --app conveyor.contrib.django:app`) sets Django up and runs it
        assert "supervised@example.com" in sqlite_project.wait_for_note("receipt", timeout=90)
        stop = sqlite_project.manage("conveyor", "run", "stop", "--run-dir", str(run_dir))
        assert stop.returncode == 0, stop.stderr
        assert supervisor.wait(timeout=60) == 0
    finally:
        _stop(supervisor)
        log.close()


@pytest.fixture(scope="module")
def served(sqlite_project: DjangoProject) -> Iterator[str]:  # noqa: F811
    """The project's ASGI application (Django + the dashboard) under uvicorn; its URL."""
    sqlite_project.script(
        "from django.contrib.auth.models import User\n"
        "User.objects.create_user('ada', password='ada-password', is_staff=True)\n"
        "bob = User.objects.create_user('bob', password='bob-password')\n"
        "from django.contrib.auth.models import Permission\n"
        "bob.user_permissions.add(Permission.objects.get(codename='view_note'))\n"
        "from shop.jobs import settings_note\n"
        "settings_note.enqueue()\n"
    )
    port = free_port()
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "shop.asgi:application"),
            *("--host", "127.0.0.1", "--port", str(port)),
            # "on": the server's lifespan must be answered (Django alone refuses it)
            *("--lifespan", "on", "--log-level", "warning"),
        ],
        cwd=PROJECT,
        env=sqlite_project.env,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, "uvicorn exited"
            try:
                httpx.get(url + "/", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "uvicorn did not answer within 60s"
                time.sleep(0.2)
        yield url
    finally:
        _stop(server)


def _login(url: str, user: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=10)
    form = client.get("/accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
    assert token is not None, form.text
    done = client.post(
        "/accounts/login/",
        data={
            "username": user,
            "password": f"{user}-password",
            "csrfmiddlewaretoken": token.group(1),
        },
    )
    assert done.status_code == 302, done.text
    return client


def test_the_dashboard_sends_visitors_to_djangos_login(served: str) -> None:
    with httpx.Client(base_url=served, timeout=10) as anonymous:
        page = anonymous.get("/admin/jobs/")
        assert page.status_code == 302
        assert page.headers["location"] == "/accounts/login/?next=/admin/jobs/"
        assert anonymous.get("/admin/jobs/api/overview").status_code == 403
        # The rest of the site is Django's, untouched
        assert anonymous.get("/").text == "shop home for AnonymousUser"


def test_the_dashboard_is_for_staff_only(served: str) -> None:
    bob = _login(served, "bob")
    try:
        assert bob.get("/").text == "shop home for bob"
        assert bob.get("/admin/jobs/").status_code == 403
    finally:
        bob.close()
    ada = _login(served, "ada")
    try:
        page = ada.get("/admin/jobs/")
        assert page.status_code == 200
        assert "default" in page.text  # the queue of the job enqueued at start
        # A staff user's action: the page's CSRF token, on Django's session
        csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text)
        assert csrf is not None
        token = {"x-csrf-token": csrf.group(1)}
        paused = ada.post("/admin/jobs/api/queues/default/pause", headers=token)
        assert paused.status_code == 200, paused.text
        assert ada.post("/admin/jobs/api/queues/default/resume").status_code == 403  # no token
        assert ada.post("/admin/jobs/api/queues/default/resume", headers=token).status_code == 200
    finally:
        ada.close()


def test_a_permission_that_reads_the_database_decides(served: str) -> None:
    # Given a mount for users with the shop.view_note permission (a database query)
    bob = _login(served, "bob")
    try:
        # Then bob, who has it though not staff, sees it
        assert bob.get("/ops/jobs/").status_code == 200
    finally:
        bob.close()
    ada = _login(served, "ada")
    try:
        # and ada, staff without it, does not
        assert ada.get("/ops/jobs/").status_code == 403
        assert ada.get("/admin/jobs/").status_code == 200
    finally:
        ada.close()
