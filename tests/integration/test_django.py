"""Conveyor in a real Django 5.2 project, on SQLite and on PostgreSQL (docs/django.md).

Every process is a real one: ``manage.py conveyor ...``, workers, scripts that set Django
up as a view would. Jobs are kept in the project's own database (``DATABASE``). To keep
the run short, one script enqueues the jobs of several stories and one worker runs them
(`worked`); each test then reads its own story.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.integration.django_support import DjangoProject, project  # noqa: F401 - fixture

pytestmark = pytest.mark.timeout(300)

ENQUEUE = """
from django.db import transaction
from shop.jobs import async_connection_state, connection_state, receipt, settings_note
from shop.models import Order
from conveyor.contrib.django import enqueue_on_commit, on_commit

# A committed transaction, a rolled-back one, and autocommit.
with transaction.atomic():
    kept = Order.objects.create(email="kept@example.com")
    enqueue_on_commit(receipt, kept.id)
try:
    with transaction.atomic():
        gone = Order.objects.create(email="gone@example.com")
        on_commit(receipt.options(priority="high")).enqueue(gone.id)
        raise RuntimeError("roll back")
except RuntimeError:
    pass
outside = Order.objects.create(email="outside@example.com")
enqueue_on_commit(receipt, outside.id)

# The same through the task's own option, which returns a handle.
with transaction.atomic():
    kept_too = Order.objects.create(email="option-kept@example.com")
    option_handle = receipt.options(on_commit=True).enqueue(kept_too.id)
try:
    with transaction.atomic():
        gone_too = Order.objects.create(email="option-gone@example.com")
        receipt.options(on_commit=True).enqueue(gone_too.id)
        raise RuntimeError("roll back")
except RuntimeError:
    pass

# A call that does not fit the task fails here, not when the transaction commits.
bad_call = None
try:
    with transaction.atomic():
        enqueue_on_commit(receipt, kept.id, colour="red")
except TypeError as exc:
    bad_call = str(exc)

# Eager mode (tests): the job runs when the transaction commits, not before.
from shop.jobs import app
from shop.models import Note
from conveyor.testing import eager

with eager(app):
    with transaction.atomic():
        order = Order.objects.create(email="eager@example.com")
        enqueue_on_commit(receipt, order.id)
        eager_before = Note.objects.filter(value="eager@example.com").count()
    eager_after = Note.objects.filter(value="eager@example.com").count()

settings_note.enqueue()
for label in ("sync-1", "sync-2"):
    connection_state.enqueue(label)
for label in ("async-1", "async-2"):
    async_connection_state.enqueue(label)
result = {
    "bad_call": bad_call,
    "eager": [eager_before, eager_after],
    "option_handle": option_handle.id,
}
"""

NOTES = """
from shop.models import Note
result = {}
for key, value in Note.objects.order_by("id").values_list("key", "value"):
    result.setdefault(key, []).append(value)
"""


@pytest.fixture(scope="module")
def worked(project: DjangoProject) -> dict[str, Any]:  # noqa: F811 - the fixture above
    """The jobs of `ENQUEUE`, run by one ``manage.py conveyor worker --burst``."""
    found: dict[str, Any] = project.script(ENQUEUE)
    project.work()
    found["notes"] = project.script(NOTES)
    return found


def test_jobs_exist_only_when_the_transaction_commits(worked: dict[str, Any]) -> None:
    # Given orders made in a committed transaction, a rolled-back one and in autocommit,
    # each with its job enqueued on commit, and a worker that ran every ready job,
    # then only the committed orders' jobs ran, through the ORM in the worker
    receipts = sorted(worked["notes"]["receipt"])
    assert receipts == [
        "eager@example.com",
        "kept@example.com",
        "option-kept@example.com",
        "outside@example.com",
    ]
    assert worked["option_handle"]


def test_in_eager_mode_the_job_runs_when_the_transaction_commits(worked: dict[str, Any]) -> None:
    assert worked["eager"] == [0, 1]


def test_a_bad_call_fails_at_the_callers_line(worked: dict[str, Any]) -> None:
    assert "receipt" in worked["bad_call"]
    assert "colour" in worked["bad_call"]


def test_the_conveyor_dict_configures_the_app(
    project: DjangoProject,  # noqa: F811
    worked: dict[str, Any],
) -> None:
    seen = json.loads(worked["notes"]["settings"][0])
    assert seen["concurrency"] == 1  # CONVEYOR["WORKER_CONCURRENCY"]
    # "DATABASE": "default" keeps the jobs in Django's own database
    assert seen["url"].startswith("sqlite:///" if project.kind == "sqlite" else "postgresql://")
    assert project.db.rsplit("/", 1)[-1] in seen["url"]


def test_connections_are_closed_between_jobs(worked: dict[str, Any]) -> None:
    # Jobs ran one after another on one thread (CONN_MAX_AGE=0): each found the connection
    # closed by the end of the job before it, as each request does in Django.
    for label in ("sync-1", "sync-2", "async-1", "async-2"):
        assert worked["notes"][label] == ["false"], label


def test_a_connection_lost_between_jobs_is_replaced(project: DjangoProject) -> None:  # noqa: F811
    if project.kind != "postgres":
        pytest.skip("the server ends a connection: PostgreSQL's")
    # Given connections kept for good and checked before reuse, as in production settings,
    kept = {"SHOP_CONN_MAX_AGE": "none", "SHOP_CONN_HEALTH_CHECKS": "1"}
    # and a job after which the server ends the thread's connection (a restart)
    project.script(
        "from shop.jobs import connection_state, lose_connection\n"
        "lose_connection.enqueue()\n"
        "connection_state.enqueue('after-loss')\n",
        env=kept,
    )
    # When one worker thread runs both
    project.work(env=kept)
    # Then the second job got a working connection: the dead one was checked and replaced
    # before it started, as Django does before each request
    notes = project.script(NOTES)
    assert len(notes["lost"]) == 1
    assert notes["after-loss"] == ["true"]  # the thread still held the dead connection


def test_the_job_joins_djangos_own_transaction_on_postgres(
    project: DjangoProject,  # noqa: F811
) -> None:
    if project.kind != "postgres":
        pytest.skip("transactional enqueue is PostgreSQL's")
    # Given a transaction open on Django's connection, with a job enqueued in it
    result = project.script(
        "import psycopg\n"
        "from django.db import connection, transaction\n"
        "from shop.jobs import receipt\n"
        "from conveyor.contrib.django import on_commit\n"
        "count = \"SELECT count(*) FROM conveyor.jobs WHERE queue = 'joined'\"\n"
        "result = {}\n"
        "try:\n"
        "    with transaction.atomic():\n"
        "        on_commit(receipt.options(queue='joined')).enqueue(1)\n"
        "        with connection.cursor() as cur:\n"
        "            cur.execute(count)\n"
        "            result['same_transaction'] = cur.fetchone()[0]\n"
        f"        with psycopg.connect({project.db!r}) as other:\n"
        "            result['other_connection'] = other.execute(count).fetchone()[0]\n"
        "        raise RuntimeError('roll back')\n"
        "except RuntimeError:\n"
        "    pass\n"
        f"with psycopg.connect({project.db!r}) as other:\n"
        "    result['after_rollback'] = other.execute(count).fetchone()[0]\n"
    )
    # Then the job was stored at once, inside that transaction: seen there, nowhere else,
    # and gone with the rollback
    assert result == {"same_transaction": 1, "other_connection": 0, "after_rollback": 0}


def test_a_store_chosen_by_the_environment_gets_the_job_after_commit(
    project: DjangoProject,  # noqa: F811
    tmp_path: Path,
) -> None:
    if project.kind != "postgres":
        pytest.skip("about the PostgreSQL database shared with Django")
    # Given CONVEYOR_URL naming another store than the Django database of DATABASE
    elsewhere = {"CONVEYOR_URL": f"sqlite:///{tmp_path / 'elsewhere.db'}"}
    inside = project.script(
        "from django.db import connection, transaction\n"
        "from shop.jobs import receipt\n"
        "from conveyor.contrib.django import on_commit\n"
        "with transaction.atomic():\n"
        "    on_commit(receipt.options(queue='elsewhere')).enqueue(1)\n"
        "    with connection.cursor() as cur:\n"
        "        cur.execute(\"SELECT count(*) FROM conveyor.jobs WHERE queue = 'elsewhere'\")\n"
        "        result = cur.fetchone()[0]\n",
        env=elsewhere,
    )
    # Then nothing went through Django's connection, and the job reached that store on commit
    assert inside == 0
    status = project.manage("conveyor", "status", "--json", env=elsewhere)
    assert status.returncode == 0, status.stderr
    assert '"elsewhere"' in status.stdout


def test_manage_py_conveyor_runs_the_cli(project: DjangoProject) -> None:  # noqa: F811
    status = project.manage("conveyor", "status", "--json")
    assert status.returncode == 0, status.stderr
    assert "queues" in json.loads(status.stdout)
    if project.kind != "sqlite":
        return  # the rest is about the command line, not the database
    help_text = project.manage("conveyor", "--help")
    assert help_text.returncode == 0, help_text.stderr
    assert "worker" in help_text.stdout and "scheduler" in help_text.stdout
    refused = project.manage("conveyor", "status", "--app", "shop.jobs:app")
    assert refused.returncode == 2
    assert "leave out --app" in refused.stderr


def test_the_environment_wins_over_the_conveyor_dict(project: DjangoProject) -> None:  # noqa: F811
    if project.kind != "sqlite":
        pytest.skip("about settings.py, not the database")
    done = project.manage("conveyor", "config", "--json", env={"WORKER_CONCURRENCY": "3"})
    assert done.returncode == 0, done.stderr
    rows = {row["setting"]: row for row in json.loads(done.stdout)["settings"]}
    assert rows["worker_concurrency"]["value"] == 3
    assert rows["worker_concurrency"]["source"] == "env WORKER_CONCURRENCY"


def test_a_dict_without_a_store_keeps_the_apps_own_url(
    project: DjangoProject,  # noqa: F811
    tmp_path: Path,
) -> None:
    if project.kind != "sqlite":
        pytest.skip("about settings.py, not the database")
    # Given an app made with its own URL, and a CONVEYOR dict giving settings but no store
    own = f"sqlite:///{tmp_path / 'own.db'}"
    env = {
        "SHOP_JOBS_URL": own,
        "SHOP_CONVEYOR": json.dumps({"APP": "shop.jobs:app", "WORKER_CONCURRENCY": 2}),
    }
    seen = project.script(
        "from shop.jobs import app\n"
        "result = [app.url, app.settings.conveyor_url, app.settings.worker_concurrency]\n",
        env=env,
    )
    # Then the dict's settings apply and the app keeps its store (not the default one)
    assert seen == [own, own, 2]


def test_a_wrong_conveyor_setting_is_reported_and_stops_commands(
    project: DjangoProject,  # noqa: F811
) -> None:
    if project.kind != "sqlite":
        pytest.skip("about settings.py, not the database")
    bad = {"SHOP_CONVEYOR": json.dumps({"APP": "shop.jobs:app", "WORKER_CONCURENCY": 2})}
    check = project.manage("check", env=bad)
    assert check.returncode == 1
    assert "conveyor.E001" in check.stderr
    assert "did you mean 'WORKER_CONCURRENCY'" in check.stderr
    status = project.manage("conveyor", "status", env=bad)
    assert status.returncode == 2
    assert "WORKER_CONCURENCY" in status.stderr
    assert "Traceback" not in status.stderr
