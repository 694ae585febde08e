"""The project's Conveyor app and its tasks; every task uses Django's ORM."""

import json
import os
import time

import psycopg
from asgiref.sync import sync_to_async
from django.db import connection
from shop.models import Note, Order

from conveyor import Conveyor

#: SHOP_JOBS_URL: a store named in code, as `Conveyor(url)` (none: CONVEYOR_URL or the dict).
app = Conveyor(os.environ.get("SHOP_JOBS_URL"))


@app.task(name="shop.receipt")
def receipt(order_id: int) -> str:
    """Write a note for the order, through the ORM, from the worker's thread."""
    order = Order.objects.get(pk=order_id)
    Note.objects.create(key="receipt", value=order.email)
    return order.email


@app.task(name="shop.connection_state")
def connection_state(label: str) -> None:
    """Note whether this thread still had a database connection open when the job began."""
    was_open = connection.connection is not None
    Note.objects.create(key=label, value=json.dumps(was_open))


@app.task(name="shop.async_connection_state")
async def async_connection_state(label: str) -> None:
    """As `connection_state`, from async code, through Django's thread for sync calls."""

    def note() -> None:
        was_open = connection.connection is not None
        Note.objects.create(key=label, value=json.dumps(was_open))

    await sync_to_async(note, thread_sensitive=True)()


@app.task(name="shop.lose_connection")
def lose_connection() -> None:
    """Have the server end this thread's connection, as a database restart would."""
    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        (pid,) = cur.fetchone()
    Note.objects.create(key="lost", value=str(pid))
    with psycopg.connect(os.environ["SHOP_DB"], autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
        deadline = time.monotonic() + 10
        gone = "SELECT count(*) FROM pg_stat_activity WHERE pid = %s"
        while other.execute(gone, [pid]).fetchone() != (0,) and time.monotonic() < deadline:
            time.sleep(0.05)


@app.task(name="shop.settings")
def settings_note() -> None:
    """Note the settings the worker runs with, as Conveyor read them."""
    Note.objects.create(
        key="settings",
        value=json.dumps({"concurrency": app.settings.worker_concurrency, "url": app.url}),
    )
