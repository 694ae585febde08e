"""The ``CONVEYOR`` dict of a Django project's ``settings.py``, read into Conveyor settings.

```python
CONVEYOR = {
    "APP": "shop.jobs:app",         # where your Conveyor(...) app is: module:attribute
    "DATABASE": "default",          # keep jobs in this Django database (PostgreSQL, SQLite)
    # or "URL": "redis://localhost:6379/0",
    "WORKER_CONCURRENCY": 4,        # any Conveyor setting, by its variable name
}
```

Keys are Conveyor's variable names, with or without ``CONVEYOR_`` (``WORKER_QUEUES``,
``CONVEYOR_LOG_LEVEL``), in any case; values are Python values (``4``, ``["mail", "jobs"]``,
``True``) or the strings the variables take. A variable set in the environment (or
``.env``) wins over the dict, so a deploy can change one value without editing
``settings.py``; the dict wins over ``conveyor.toml`` and the defaults.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from conveyor.errors import ConfigError
from conveyor.settings import Settings, load_settings
from conveyor.settings.names import PREFIX, names_of
from conveyor.settings.sources import Layers

#: Keys of the dict that are not settings.
OWN_KEYS = ("APP", "URL", "DATABASE")
SETTING = "CONVEYOR"


@dataclass(frozen=True, slots=True)
class ProjectConfig:
    """What the ``CONVEYOR`` dict says: the app's location and the settings it gives."""

    app: str | None = None
    #: The Django database alias the jobs are kept in (``DATABASE``), if they are.
    database: str | None = None
    #: Settings by field name (``worker_concurrency``), as written in the dict.
    values: Mapping[str, Any] = field(default_factory=dict)

    def settings(self, layers: Layers | None = None) -> Settings:
        """Conveyor's settings with the dict's values, except those the environment sets."""
        layers = layers or Layers.read()
        given = {k: v for k, v in self.values.items() if not _in_environment(layers, k)}
        try:
            return load_settings(**given)
        except ConfigError as exc:
            # One line: each value the dict gives that Conveyor cannot use, and why.
            lines = str(exc).removeprefix("invalid Conveyor settings:").strip().splitlines()
            raise ConfigError(
                f"settings.{SETTING}: " + "; ".join(x.strip() for x in lines)
            ) from None


def _in_environment(layers: Layers, field_name: str) -> bool:
    for var in names_of(field_name):
        if var in layers.env and layers.env[var][1].strip():
            return True
        if var in layers.dotenv.values and layers.dotenv.values[var][1].strip():
            return True
    return False


def read(raw: object, databases: Mapping[str, Mapping[str, Any]]) -> ProjectConfig:
    """Check ``settings.CONVEYOR`` (``raw``) and say what it gives; `ConfigError` if wrong."""
    if raw is None:
        return ProjectConfig()
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"settings.{SETTING} is a {type(raw).__name__}; make it a dict, e.g. "
            f'{SETTING} = {{"APP": "myproject.jobs:app", "DATABASE": "default"}}'
        )
    fields = Settings.model_fields
    values: dict[str, Any] = {}
    app: str | None = None
    for key, value in raw.items():
        name = str(key).upper()
        if name == "APP":
            app = _app_spec(value)
        elif name in ("URL", "CONVEYOR_URL"):
            values["conveyor_url"] = value
        elif name == "DATABASE":
            continue  # below, once URL is known
        else:
            field_name = name.removeprefix(PREFIX).lower()
            if field_name not in fields or field_name == "conveyor_url":
                raise ConfigError(_unknown(str(key), fields))
            values[field_name] = value
    alias = next((v for k, v in raw.items() if str(k).upper() == "DATABASE"), None)
    if alias is not None:
        if "conveyor_url" in values:
            raise ConfigError(
                f"settings.{SETTING} has both URL and DATABASE: keep one (DATABASE keeps "
                "jobs in that Django database, URL anywhere else)"
            )
        values["conveyor_url"] = database_url(str(alias), databases)
    return ProjectConfig(app=app, database=None if alias is None else str(alias), values=values)


def _app_spec(value: object) -> str:
    if not isinstance(value, str) or not value.partition(":")[0].strip():
        raise ConfigError(
            f"settings.{SETTING}['APP'] is {value!r}: give where your Conveyor app is, as "
            "'module:attribute', e.g. 'myproject.jobs:app'"
        )
    return value


def _unknown(key: str, fields: Mapping[str, Any]) -> str:
    known = [*OWN_KEYS, *(f.upper() for f in fields if f != "conveyor_url")]
    match = difflib.get_close_matches(key.upper().removeprefix(PREFIX), known, n=1, cutoff=0.7)
    hint = f": did you mean {match[0]!r}?" if match else ""
    return (
        f"settings.{SETTING} has the key {key!r}, which is not a Conveyor setting{hint} "
        "(keys: APP, URL or DATABASE, and the variables of docs/configuration.md)"
    )


def database_url(alias: str, databases: Mapping[str, Mapping[str, Any]]) -> str:
    """The Conveyor URL of Django's ``DATABASES[alias]`` (PostgreSQL or SQLite)."""
    db = databases.get(alias)
    if db is None:
        names = ", ".join(sorted(databases)) or "none"
        raise ConfigError(
            f"settings.{SETTING}['DATABASE'] is {alias!r}, which is not in DATABASES "
            f"(databases: {names})"
        )
    engine = str(db.get("ENGINE", ""))
    name = str(db.get("NAME") or "")
    if engine.endswith(".sqlite3"):
        if not name or name == ":memory:" or name.startswith("file:"):
            raise ConfigError(
                f"DATABASES[{alias!r}] is an in-memory SQLite database, which worker "
                "processes cannot share: give it a file NAME, or set CONVEYOR['URL']"
            )
        return f"sqlite:///{name}"
    if engine.endswith(".postgresql"):
        return _postgres_url(db)
    raise ConfigError(
        f"DATABASES[{alias!r}] uses {engine or 'no ENGINE'}; Conveyor can keep jobs in a "
        "PostgreSQL or SQLite database: set CONVEYOR['URL'] to another store instead"
    )


#: libpq options of Django's ``OPTIONS`` that the Conveyor URL carries over.
_LIBPQ_OPTIONS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "options", "target_session_attrs")


def _postgres_url(db: Mapping[str, Any]) -> str:
    options = db.get("OPTIONS") or {}
    if options.get("service"):
        raise ConfigError(
            "the database is named by a pg_service.conf service, which Conveyor does not "
            "read: set CONVEYOR['URL'] to its postgresql:// URL"
        )
    user = quote(str(db.get("USER") or ""), safe="")
    password = quote(str(db.get("PASSWORD") or ""), safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = str(db.get("HOST") or "")
    query = [(k, str(options[k])) for k in _LIBPQ_OPTIONS if options.get(k)]
    port = str(db.get("PORT") or "")
    if host.startswith("/"):  # a Unix socket directory, as libpq's host= takes it
        query += [("host", host)] + ([("port", port)] if port else [])
        netloc = auth.rstrip("@") + ("@" if auth else "")
    else:
        netloc = auth + (f"[{host}]" if ":" in host else host or "localhost")
        netloc += f":{port}" if port else ""
    tail = f"?{urlencode(query, quote_via=quote)}" if query else ""
    return f"postgresql://{netloc}/{quote(str(db.get('NAME') or ''), safe='')}{tail}"
