"""The test Django project (tests/integration/django_project), run as its users run it.

`DjangoProject` runs ``manage.py`` and short scripts in subprocesses (each sets Django up
from ``shop.settings``), on SQLite or on a PostgreSQL database of its own. Jobs are kept in
the project's own database (``CONVEYOR = {"DATABASE": "default"}``), as the docs suggest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

try:
    import django  # noqa: F401
except ImportError:  # pragma: no cover - the test extra installs it
    if os.environ.get("CI"):
        raise
    pytest.skip("Django is not installed (the test extra has it)", allow_module_level=True)

PROJECT = Path(__file__).resolve().parent / "django_project"
BASE_CONVEYOR = {"APP": "shop.jobs:app", "DATABASE": "default", "WORKER_CONCURRENCY": 1}


class DjangoProject:
    """The test project on one database; ``env`` is what every process of it gets."""

    def __init__(self, kind: str, db: str, run_dir: Path) -> None:
        self.kind = kind
        self.db = db
        self.run_dir = run_dir
        self.env = {
            **os.environ,
            "SHOP_DB": db,
            "SHOP_CONVEYOR": json.dumps(BASE_CONVEYOR),
            "DJANGO_SETTINGS_MODULE": "shop.settings",
            "PYTHONPATH": str(PROJECT),
        }
        for name in list(self.env):
            if name.startswith("CONVEYOR_") and not name.startswith("CONVEYOR_TEST_"):
                del self.env[name]

    def manage(
        self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 90.0
    ) -> subprocess.CompletedProcess[str]:
        """``python manage.py ARGS...`` in the project, finished."""
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=PROJECT,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def script(self, code: str, env: Mapping[str, str] | None = None) -> Any:
        """Run ``code`` with Django set up; it assigns ``result``, returned (as JSON)."""
        wrapper = (
            "import django, json\ndjango.setup()\nresult = None\n"
            + code
            + "\nprint('RESULT=' + json.dumps(result))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", wrapper],
            cwd=PROJECT,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=90,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT="))
        return json.loads(line.removeprefix("RESULT="))

    def work(
        self, *args: str, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``manage.py conveyor worker --burst`` (one thread): runs every ready job."""
        done = self.manage("conveyor", "worker", "--burst", "--concurrency", "1", *args, env=env)
        assert done.returncode == 0, done.stderr
        return done

    def notes(self, key: str) -> list[str]:
        """The values of the notes jobs wrote under ``key``, oldest first."""
        result = self.script(
            "from shop.models import Note\n"
            f"result = list(Note.objects.filter(key={key!r}).order_by('id')"
            ".values_list('value', flat=True))"
        )
        return list(result)

    def wait_for_note(self, key: str, timeout: float = 60.0) -> list[str]:
        """The notes under ``key`` once there is one; fails after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.notes(key)
            if found:
                return found
            time.sleep(0.5)
        raise AssertionError(f"no note {key!r} within {timeout}s")


def _postgres_database() -> Iterator[str]:
    from tests.contract.support import server_url

    base = server_url("postgres")
    name = f"conveyor_django_{os.urandom(5).hex()}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(base)
    try:
        yield urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", ""))
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _project(kind: str, home: Path) -> Iterator[DjangoProject]:
    databases = (
        iter([f"sqlite:{home / 'db.sqlite3'}"]) if kind == "sqlite" else _postgres_database()
    )
    db = next(databases)
    found = DjangoProject(kind, db, home / "run")
    for args in (("migrate", "-v0"), ("conveyor", "migrate")):
        done = found.manage(*args)
        assert done.returncode == 0, done.stderr
    yield found
    for _ in databases:  # drops the PostgreSQL database
        pass


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def project(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DjangoProject]:
    """The project on SQLite, then on PostgreSQL, migrated (Django's and Conveyor's tables)."""
    yield from _project(request.param, tmp_path_factory.mktemp(f"django-{request.param}"))


@pytest.fixture(scope="module")
def sqlite_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DjangoProject]:
    """The project on SQLite only, for what does not depend on the database."""
    yield from _project("sqlite", tmp_path_factory.mktemp("django-sqlite"))
