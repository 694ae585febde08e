"""Django: Conveyor as an app of your project (``docs/django.md``).

```python
# settings.py
INSTALLED_APPS = [..., "conveyor.contrib.django"]
CONVEYOR = {"APP": "shop.jobs:app", "DATABASE": "default"}
```

* ``python manage.py conveyor worker|scheduler|run|status|...`` runs every ``conveyor``
  command with Django set up (and so do the worker processes ``run`` starts);
* `close_db_connections` closes stale and broken database connections before and after each
  job, as Django's request cycle does; the project's app gets it when Django starts;
* `on_commit` / `enqueue_on_commit` store a job only if the surrounding transaction commits;
  when the jobs live in that very PostgreSQL database (``"DATABASE"``), the job is stored
  through Django's own connection, inside the transaction; `db_connection` hands that
  connection to ``task.options(connection=...)`` yourself;
* `with_dashboard` serves the dashboard next to your ASGI project, behind Django's login
  (staff only by default).

``--app conveyor.contrib.django:app`` names the project's app from anywhere
``DJANGO_SETTINGS_MODULE`` is set (plain ``conveyor`` commands, exported deployments).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

try:
    import django  # noqa: F401 - the integration's one requirement, said plainly
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError(
        "conveyor.contrib.django needs Django: pip install 'conveyor[django]'"
    ) from exc

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.contrib.django.connections import close_db_connections
    from conveyor.contrib.django.dashboard import with_dashboard
    from conveyor.contrib.django.transactions import db_connection, enqueue_on_commit, on_commit

__all__ = [
    "app",
    "close_db_connections",
    "db_connection",
    "enqueue_on_commit",
    "on_commit",
    "with_dashboard",
]

#: Where each name is; imported when first used, so that Django importing this app at
#: start-up loads nothing else.
_LAZY = {
    "close_db_connections": "conveyor.contrib.django.connections",
    "db_connection": "conveyor.contrib.django.transactions",
    "enqueue_on_commit": "conveyor.contrib.django.transactions",
    "on_commit": "conveyor.contrib.django.transactions",
    "with_dashboard": "conveyor.contrib.django.dashboard",
}


def __getattr__(name: str) -> Any:
    if name == "app":
        from conveyor.contrib.django.project import project_app

        found: Conveyor = project_app()
        return found
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
