"""The Laravel seed's queue variables: ``QUEUE_CONNECTION`` and its companions, as a store URL.

A Laravel ``.env`` chooses its queue with ``QUEUE_CONNECTION`` and describes the server with
companion variables. When ``CONVEYOR_URL`` is not set, Conveyor reads them the same way:

=================  ==========================================================================
QUEUE_CONNECTION   the store URL, built from
=================  ==========================================================================
redis              ``REDIS_URL``, else ``REDIS_HOST`` (127.0.0.1), ``REDIS_PORT`` (6379),
                   ``REDIS_USERNAME``, ``REDIS_PASSWORD`` (``null`` is none), ``REDIS_DB`` (0)
database           ``DB_URL`` (or ``DATABASE_URL``), else ``DB_CONNECTION``: ``pgsql`` from
                   ``DB_HOST``, ``DB_PORT``, ``DB_DATABASE``, ``DB_USERNAME``, ``DB_PASSWORD``;
                   ``sqlite`` from ``DB_DATABASE`` (a file path)
sqs                ``sqs://`` + ``AWS_DEFAULT_REGION`` (or ``AWS_REGION``, or the region in
                   ``SQS_PREFIX``); ``SQS_QUEUE_<POOL>`` and ``SQS_QUEUE`` give ``?prefix=``
sync               refused: Conveyor's inline mode is per app (``conveyor.testing.eager``)
=================  ==========================================================================

What cannot be mapped (``DB_CONNECTION=mysql``, ``SQS_SUFFIX``, SQS queue names that do not
end with their pool's name) is a `Problem` naming the variable: the app still imports on
the default store, and commands refuse to start, as for any unusable setting. ``SQS_QUEUE_*``
without ``QUEUE_CONNECTION=sqs`` is a notice: nothing reads them then.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode, urlsplit

from conveyor.settings.report import Origin, Problem

if TYPE_CHECKING:
    from conveyor.settings.sources import Layers

#: ``SQS_QUEUE_<POOL>``: the SQS queue of one of the seed's pools (``SQS_QUEUE`` is the
#: default queue's).
_SQS_QUEUE = re.compile(r"^SQS_QUEUE(?:_([A-Z][A-Z0-9_]*))?$")
#: The seed's SQS_PREFIX: ``https://sqs.<region>.amazonaws.com/<account id>``.
_AWS_SQS_HOST = re.compile(r"^sqs\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")
#: What may start an SQS queue name (Conveyor's SQS store adds the queue's own name).
_SQS_PREFIX = re.compile(r"[A-Za-z0-9_-]{0,40}")
_POSTGRES = frozenset({"pgsql", "postgres", "postgresql"})
_NULL = frozenset({"", "null", "none"})


@dataclass(frozen=True, slots=True)
class Derived:
    """A store URL read from the seed's variables, or why none could be."""

    url: str | None
    origin: Origin
    problem: Problem | None = None


def _value(layers: Layers, name: str) -> tuple[str, Origin] | None:
    """``name``'s value (the environment first, then ``.env``), when set and not empty."""
    if name in layers.env and layers.env[name][1].strip():
        return layers.env[name][1].strip(), Origin("env", layers.env[name][0])
    if name in layers.dotenv.values and layers.dotenv.values[name][1].strip():
        written, value = layers.dotenv.values[name]
        path = str(layers.dotenv.path)
        return value.strip(), Origin(".env", written, path, layers.dotenv.lines.get(name, 0))
    return None


def _get(layers: Layers, name: str, default: str = "") -> str:
    found = _value(layers, name)
    return default if found is None else found[0]


def derive_url(layers: Layers, connection: str, origin: Origin) -> Derived:
    """The store URL ``QUEUE_CONNECTION=connection`` and its companions describe."""
    try:
        if connection == "redis":
            url = _redis(layers)
        elif connection == "database":
            url = _database(layers)
        elif connection == "sqs":
            url = _sqs(layers)
        else:
            raise _Refused(
                "QUEUE_CONNECTION=sync runs jobs inline in Laravel; Conveyor's inline mode is "
                "per app (`with conveyor.testing.eager(app):`, docs/testing.md). Set "
                "QUEUE_CONNECTION to redis, database or sqs, or CONVEYOR_URL"
            )
    except _Refused as exc:
        text = f"{origin.assignment(repr(connection))}: {exc}"
        return Derived(None, origin, Problem(("conveyor_url",), text, None))
    return Derived(url, origin)


class _Refused(Exception):
    """A companion variable Conveyor cannot use; the message names it."""


def _redis(layers: Layers) -> str:
    url = _get(layers, "REDIS_URL")
    if url:
        return url
    host = _host(_get(layers, "REDIS_HOST", "127.0.0.1"))
    port = _get(layers, "REDIS_PORT", "6379")
    db = _get(layers, "REDIS_DB", "0")
    if not port.isdigit() or not db.isdigit():
        raise _Refused(f"REDIS_PORT={port!r} and REDIS_DB={db!r} must be whole numbers")
    return f"redis://{_credentials(layers, 'REDIS')}{host}:{port}/{db}"


def _host(host: str) -> str:
    """``host`` as a URL writes it: an IPv6 address in brackets (``REDIS_HOST=::1``)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _credentials(layers: Layers, prefix: str) -> str:
    user = _get(layers, f"{prefix}_USERNAME")
    password = _get(layers, f"{prefix}_PASSWORD")
    user = "" if user.lower() in _NULL else quote(user, safe="")
    password = "" if password.lower() in _NULL else quote(password, safe="")
    if not user and not password:
        return ""
    return f"{user}:{password}@" if password else f"{user}@"


def _database(layers: Layers) -> str:
    url = _get(layers, "DB_URL") or _get(layers, "DATABASE_URL")
    if url:
        scheme = url.partition("://")[0].lower()
        if scheme in ("postgres", "postgresql", "pgsql"):
            return "postgresql://" + url.partition("://")[2]
        if scheme == "sqlite":
            return url
        raise _Refused(
            f"DB_URL / DATABASE_URL has the scheme {scheme!r}: Conveyor stores jobs in "
            "PostgreSQL or SQLite; set CONVEYOR_URL to one of those"
        )
    driver = _get(layers, "DB_CONNECTION", "sqlite").lower()
    if driver in _POSTGRES:
        host = _host(_get(layers, "DB_HOST", "127.0.0.1"))
        port = _get(layers, "DB_PORT", "5432")
        database = quote(_get(layers, "DB_DATABASE", "laravel"), safe="")
        return f"postgresql://{_credentials(layers, 'DB')}{host}:{port}/{database}"
    if driver == "sqlite":
        path = _get(layers, "DB_DATABASE", "database/database.sqlite")
        return f"sqlite:///{path}"
    raise _Refused(
        f"DB_CONNECTION={driver!r}: Conveyor's database store is PostgreSQL (pgsql) or "
        "SQLite (sqlite), not MySQL or SQL Server; set DB_CONNECTION to one of those, "
        "QUEUE_CONNECTION=redis, or CONVEYOR_URL"
    )


def _sqs(layers: Layers) -> str:
    if _get(layers, "SQS_SUFFIX"):
        raise _Refused(
            f"SQS_SUFFIX={_get(layers, 'SQS_SUFFIX')!r}: Conveyor's SQS store names queues "
            "<prefix><queue> (a prefix, no suffix); rename the queues, or unset SQS_SUFFIX"
        )
    region = _get(layers, "AWS_DEFAULT_REGION") or _get(layers, "AWS_REGION")
    query: dict[str, str] = {}
    prefix_url = _get(layers, "SQS_PREFIX")
    if prefix_url:
        parts = urlsplit(prefix_url)
        aws = _AWS_SQS_HOST.match(parts.hostname or "")
        if aws is not None:
            region = region or aws.group(1)
        elif parts.scheme in ("http", "https") and parts.netloc:
            query["endpoint_url"] = f"{parts.scheme}://{parts.netloc}"
        else:
            raise _Refused(
                f"SQS_PREFIX={prefix_url!r} is not an SQS URL "
                "(https://sqs.<region>.amazonaws.com/<account id>)"
            )
    if not region:
        raise _Refused("the SQS region is not set: set AWS_DEFAULT_REGION (e.g. eu-west-1)")
    named = sqs_name_prefix(layers)
    if named is not None:  # the seed's names, even with no prefix (SQS_QUEUE=default)
        query["prefix"], fifo = named
        if fifo:
            query["fifo"] = "true"
    return f"sqs://{region}" + (f"?{urlencode(query)}" if query else "")


def sqs_queues(layers: Layers) -> dict[str, tuple[str, str]]:
    """``SQS_QUEUE_<POOL>`` (and ``SQS_QUEUE``) as ``{queue: (variable, SQS queue name)}``."""
    found: dict[str, tuple[str, str]] = {}
    for name in sorted({*layers.env, *layers.dotenv.values}):
        match = _SQS_QUEUE.match(name)
        if match is None:
            continue
        value = _get(layers, name)
        if value:
            queue = (match.group(1) or "default").lower().replace("_", "-")
            # Laravel also takes the queue's URL (https://sqs.<region>.../<account>/<name>).
            if urlsplit(value).scheme in ("http", "https"):
                value = urlsplit(value).path.rstrip("/").rpartition("/")[2]
            found[queue] = (name, value)
    return found


def sqs_name_prefix(layers: Layers) -> tuple[str, bool] | None:
    """The one prefix that turns each of the seed's queue names into its SQS queue name,
    and whether they are FIFO queues; ``None`` when no ``SQS_QUEUE*`` variable is set.

    Conveyor's SQS store names the queue of Conveyor queue ``mail`` ``<prefix>mail``, so
    ``SQS_QUEUE_MAIL=shop-prod-mail`` and ``SQS_QUEUE_JOBS=shop-prod-jobs`` give the prefix
    ``shop-prod-``; names ending in ``.fifo`` (all of them) ask for FIFO queues. Names that
    do not end with their queue, or disagree on the prefix or on FIFO, are refused, naming
    the variables.
    """
    queues = sqs_queues(layers)
    if not queues:
        return None
    fifos = {name.endswith(".fifo") for _, name in queues.values()}
    if len(fifos) > 1:
        raise _Refused(
            "some SQS_QUEUE_* names end in .fifo and some do not: one store's queues are "
            "all FIFO (?fifo=true) or none are"
        )
    prefixes: dict[str, list[str]] = {}
    for queue, (variable, full) in queues.items():
        name = full.removesuffix(".fifo")
        if not name.endswith(queue):
            raise _Refused(
                f"{variable}={name!r} does not end with the queue name {queue!r}: Conveyor "
                f"names each SQS queue <prefix><queue> (e.g. myapp-{queue}); rename the SQS "
                f"queue, or unset {variable} and route with <POOL>_WORKER_QUEUES"
            )
        prefixes.setdefault(name.removesuffix(queue), []).append(variable)
    if len(prefixes) > 1:
        shown = "; ".join(f"{p!r} in {', '.join(v)}" for p, v in sorted(prefixes.items()))
        raise _Refused(
            f"the SQS queue variables use different prefixes ({shown}): one store has one "
            "prefix; use one, or run one store (CONVEYOR_URL) per prefix"
        )
    prefix, variables = next(iter(prefixes.items()))
    if not _SQS_PREFIX.fullmatch(prefix):
        raise _Refused(
            f"{', '.join(variables)}: the common start {prefix!r} of the SQS queue names "
            "cannot start an SQS queue name (at most 40 letters, digits, '-' and '_'); "
            "rename the SQS queues"
        )
    return prefix, fifos == {True}


def unused_sqs_notice(layers: Layers) -> str | None:
    """A notice when ``SQS_QUEUE_*`` is set but the store is not SQS, so nothing reads it."""
    names = [variable for variable, _ in sqs_queues(layers).values()]
    if not names:
        return None
    return (
        f"{', '.join(names)}: the SQS queue names of the pools are read only with "
        "QUEUE_CONNECTION=sqs; the store in use is not SQS, so they are not used"
    )
