"""The project's Conveyor app: found through ``CONVEYOR['APP']``, configured when Django starts.

`configure` runs in `ConveyorConfig.ready`, in every process that starts Django (web
servers, ``manage.py``, workers): it imports the app, applies the ``CONVEYOR`` settings to
it and adds `close_db_connections` to its middleware. What goes wrong is kept, reported by
``manage.py check`` (``conveyor.E001``) and raised by `project_app`, so a web process with
a mistyped key still serves pages (with a `ConfigWarning`) while ``manage.py conveyor`` and
workers refuse to start, one line saying why.

`project_app` is also what ``--app conveyor.contrib.django:app`` names: it sets Django up
first when nobody has (``DJANGO_SETTINGS_MODULE`` says where the settings are), which is
how the worker processes of ``manage.py conveyor run`` start.
"""

from __future__ import annotations

import importlib
import os
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from conveyor.errors import ConfigError
from conveyor.settings import ConfigWarning

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.contrib.django.conf import ProjectConfig

LABEL = "conveyor"
INSTALLED = "conveyor.contrib.django"


@dataclass(slots=True)
class Project:
    """What `configure` found: the app, or why there is none."""

    config: ProjectConfig | None = None
    app: Conveyor | None = None
    error: ConfigError | None = None


_project = Project()


def configure() -> Project:
    """Read ``settings.CONVEYOR``, import the app it names and configure it (once)."""
    global _project  # noqa: PLW0603 - one project per process, as Django's own settings
    _project = Project()
    try:
        _project.config = _read()
        if _project.config.app is not None:
            _project.app = _configured(_project.config)
    except ConfigError as exc:
        _project.error = exc
        warnings.warn(f"Conveyor is not set up: {exc}", ConfigWarning, stacklevel=2)
    return _project


def current() -> Project:
    """What the last `configure` found."""
    return _project


def _read() -> ProjectConfig:
    from django.conf import settings

    from conveyor.contrib.django.conf import SETTING, read

    return read(getattr(settings, SETTING, None), settings.DATABASES)


def _configured(config: ProjectConfig) -> Conveyor:
    from conveyor.app import Conveyor
    from conveyor.contrib.django.connections import close_db_connections

    assert config.app is not None
    module_name, _, attr = config.app.partition(":")
    try:
        obj: object = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ConfigError(
                f"CONVEYOR['APP'] is {config.app!r}, but module {module_name!r} was not found"
            ) from None
        raise
    for part in (attr or "app").split("."):
        if not hasattr(obj, part):
            raise ConfigError(
                f"CONVEYOR['APP'] is {config.app!r}, but {module_name!r} has no {part!r}"
            )
        obj = getattr(obj, part)
    if not isinstance(obj, Conveyor):
        raise ConfigError(
            f"CONVEYOR['APP'] is {config.app!r}, a {type(obj).__name__}: point it at the "
            "object made by Conveyor(...)"
        )
    if config.values:
        settings = config.settings()
        if "conveyor_url" not in config.values:
            # The dict names no store (no URL or DATABASE): the app keeps the one it was
            # made with (``Conveyor(url)``, or CONVEYOR_URL), not the default.
            settings = settings.model_copy(update={"conveyor_url": obj.url})
        obj.settings = settings
        obj.url = settings.conveyor_url
    if close_db_connections not in obj.middlewares.job:
        obj.middleware(close_db_connections)
    return obj


def project_app() -> Conveyor:
    """The app of ``CONVEYOR['APP']``, Django set up first if it is not yet."""
    from django.apps import apps

    if not apps.ready:
        from django.conf import settings

        if not settings.configured and not os.environ.get("DJANGO_SETTINGS_MODULE"):
            raise ConfigError(
                "conveyor.contrib.django:app is your Django project's Conveyor app, and no "
                "project is set: set DJANGO_SETTINGS_MODULE (e.g. mysite.settings), or run "
                "`python manage.py conveyor ...`"
            )
        import django

        django.setup()
    if not apps.is_installed(INSTALLED):
        raise ConfigError(
            f"add {INSTALLED!r} to INSTALLED_APPS in your Django settings: it finds and sets "
            "up your Conveyor app when Django starts"
        )
    found = current()
    if found.error is not None:
        raise found.error
    if found.app is None:
        raise ConfigError(
            "say where your Conveyor app is in your Django settings: "
            "CONVEYOR = {'APP': 'myproject.jobs:app'}"
        )
    return found.app
