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
        """Configure the app named by ``CONVEYOR['APP']`` and register the system check."""
        from conveyor.contrib.django.project import configure

        checks.register(check_settings, "conveyor")
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
