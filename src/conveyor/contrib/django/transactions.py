"""Jobs that exist only if the surrounding Django transaction commits.

```python
from django.db import transaction
from conveyor.contrib.django import enqueue_on_commit, on_commit

with transaction.atomic():
    order = Order.objects.create(...)
    enqueue_on_commit(send_receipt, order.id)             # or:
    on_commit(send_receipt.options(delay=60)).enqueue(order.id)  # or:
    send_receipt.options(on_commit=True).enqueue(order.id)  # returns a handle
```

The call is checked at once (arguments, JSON, sizes: a mistake raises here, at the
caller's line). Then:

* when the project keeps its jobs in that very database (``CONVEYOR['DATABASE']`` is the
  transaction's alias, on PostgreSQL with psycopg 3), the job is stored now through
  Django's own connection, inside the transaction: it exists exactly when the transaction
  commits, and a crash between the commit and the enqueue cannot lose it;
* otherwise (another store, SQLite, Redis, ...) the job is enqueued by Django's
  ``transaction.on_commit`` once the outermost transaction commits, and never after a
  rollback. Outside a transaction it is enqueued at once, as Django runs the callback.

In eager mode (tests) the job runs when Django runs on-commit callbacks (``TestCase``:
``captureOnCommitCallbacks(execute=True)``). `db_connection` gives the psycopg connection
behind a Django database, for ``task.options(connection=...)`` on a store you name by URL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Generic, ParamSpec

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from conveyor.errors import ConfigError
from conveyor.task import BoundTask, JobSpec, Task

if TYPE_CHECKING:
    import psycopg

    from conveyor.app import Conveyor
    from conveyor.job import NewJob

P = ParamSpec("P")


class OnCommit(Generic[P]):
    """A task (with its options) to enqueue when a transaction commits; see `on_commit`."""

    def __init__(self, task: Task[P, Any] | BoundTask[P, Any], using: str | None) -> None:
        if not isinstance(task, (Task, BoundTask)):
            raise ConfigError(
                f"on_commit takes a task (or task.options(...)), not {type(task).__name__}"
            )
        self.task = task
        self.using = using or DEFAULT_DB_ALIAS

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> None:
        """Check the call now; store its job only if the transaction commits."""
        spec: JobSpec = self.task.call(*args, **kwargs)
        app = spec.task.app
        app.build(spec)  # every check enqueue makes, here, at the caller's line

        def store(connection: object | None) -> None:
            inside = replace(spec.options, connection=connection)
            app.enqueue_many([replace(spec, options=inside)])

        defer(app, self.using, store)


def defer(app: Conveyor, using: str, store: Callable[[object | None], None]) -> None:
    """Run ``store`` inside ``using``'s transaction when the app keeps its jobs in that
    database (``store(connection)``), else once the transaction commits (``store(None)``)."""
    if not app.eager and _shares_database(app, using):
        store(db_connection(using))
        return
    transaction.on_commit(lambda: store(None), using=using)


def commit_hook(
    app: Conveyor, jobs: Sequence[NewJob], store: Callable[[object | None], None]
) -> None:
    """What ``task.options(on_commit=True)`` uses once Django has started: the default
    database's transaction (`conveyor.app.enqueueing.set_commit_hook`). For another
    database, ``on_commit(task, using=...)``."""
    defer(app, DEFAULT_DB_ALIAS, store)


def on_commit(task: Task[P, Any] | BoundTask[P, Any], *, using: str | None = None) -> OnCommit[P]:
    """``on_commit(task).enqueue(*args, **kwargs)``: enqueue when ``using``'s transaction
    commits (the default database unless said); ``task`` may carry options."""
    return OnCommit(task, using)


def enqueue_on_commit(
    task: Task[P, Any] | BoundTask[P, Any], /, *args: P.args, **kwargs: P.kwargs
) -> None:
    """Enqueue ``task(*args, **kwargs)`` only if the default database's transaction commits."""
    OnCommit(task, None).enqueue(*args, **kwargs)


def _shares_database(app: Conveyor, using: str) -> bool:
    """Whether ``app`` keeps its jobs in Django's database ``using`` (on PostgreSQL)."""
    from conveyor.contrib.django.project import current

    project = current()
    if project.app is not app or project.config is None:
        return False
    # The URL made from DATABASES, unless CONVEYOR_URL in the environment chose another store.
    same_store = project.config.values.get("conveyor_url") == app.url
    return (
        project.config.database == using
        and same_store
        and connections[using].vendor == "postgresql"
    )


def db_connection(using: str | None = None) -> psycopg.Connection[Any]:
    """The psycopg 3 connection behind Django's database ``using``, connected.

    ``task.options(connection=db_connection()).enqueue(...)`` stores the job inside the
    transaction Django has open on it (at once in autocommit mode). The store must be that
    same PostgreSQL database.
    """
    alias = using or DEFAULT_DB_ALIAS
    wrapper = connections[alias]
    if wrapper.vendor != "postgresql":
        raise ConfigError(
            f"Django's database {alias!r} is {wrapper.vendor}: jobs can join only a "
            "PostgreSQL transaction; use on_commit(...) or enqueue_on_commit(...) instead"
        )
    wrapper.ensure_connection()
    import psycopg

    raw = wrapper.connection
    if not isinstance(raw, psycopg.Connection):
        raise ConfigError(
            f"Django's database {alias!r} runs on {type(raw).__module__.split('.')[0]}; "
            "Conveyor joins transactions through psycopg 3: pip install 'psycopg[binary]' "
            "(Django then uses it)"
        )
    return raw
