"""The Django app: ``"conveyor.contrib.django"`` in ``INSTALLED_APPS``."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core import checks


class ConveyorConfig(AppConfig):  # type: ignore[misc]  # Django is untyped
    """Sets up the project's Conveyor app when Django starts (`conveyor.contrib.django`)."""

    name = "conveyor.contrib.django"
    label = "conveyor"
    verbose_name = "Conveyor"

    def ready(self) -> None:
        """Configure the app named by ``CONVEYOR['APP']``, register the system check and
        make ``task.options(on_commit=True)`` use Django's transactions."""
        from conveyor.app.enqueueing import set_commit_hook
        from conveyor.contrib.django.project import configure
        from conveyor.contrib.django.transactions import commit_hook

        checks.register(check_settings, "conveyor")
        set_commit_hook(commit_hook)  # task.options(on_commit=True)
        configure()


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``manage.py check``: the ``CONVEYOR`` setting and the app it names (conveyor.E001)."""
    from conveyor.contrib.django.project import current

    error = current().error
    if error is None:
        return []
    return [
        checks.Error(
            str(error),
            hint="docs/django.md lists what CONVEYOR may hold",
            id="conveyor.E001",
        )
    ]
