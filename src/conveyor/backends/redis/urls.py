"""Redis URLs: which servers a store is on, how to reach them, and the options Conveyor
reads itself.

``redis://[[user]:password@]host:6379/0``  one server (``rediss://`` for TLS)
``redis+sentinel://[user:password@]host:port[,host:port...]/SERVICE[/DB]``
                                          the primary Sentinel names for SERVICE
                                          (``rediss+sentinel://``: sentinels and servers
                                          over TLS, the same ``ssl_*`` options for both)
``redis+cluster://[user:password@]host:port[,host:port...]/``
                                          a Redis Cluster, from any of its nodes

Conveyor's own query options (`OWN_OPTIONS`) are taken out; every other one goes to
redis-py (``socket_timeout``, ``ssl_ca_certs``...). The user and password are those of the
data servers; sentinels that have their own take ``?sentinel_password=`` (and
``?sentinel_username=``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache
from typing import Literal
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from conveyor.errors import ConfigError
from conveyor.redaction import redact_url

DEFAULT_PREFIX = "conveyor"
SENTINEL_SCHEME = "redis+sentinel"
#: Sentinel with TLS to the sentinels and to the servers they name.
TLS_SENTINEL_SCHEME = "rediss+sentinel"
SENTINEL_SCHEMES = (SENTINEL_SCHEME, TLS_SENTINEL_SCHEME)
CLUSTER_SCHEME = "redis+cluster"
DEFAULT_SENTINEL_PORT = 26379
DEFAULT_PORT = 6379
#: How long an enqueue waits for ``wait_replicas`` replicas when the URL does not say.
DEFAULT_WAIT_TIMEOUT_MS = 1000

#: Query options this backend reads itself; the rest go to redis-py (``socket_timeout``...).
OWN_OPTIONS = frozenset(
    {"prefix", "sentinel_password", "sentinel_username", "wait_replicas", "wait_timeout_ms"}
)
#: redis-py's TLS options naming files, checked before a connection is tried.
SSL_FILES = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")

Kind = Literal["server", "sentinel", "cluster"]


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed Redis URL: where the store is, how to reach it, and this store's prefix.

    ``redis_url`` is what redis-py connects with: for one server the URL without our own
    options; for Sentinel and Cluster the same with the first listed host, which gives
    redis-py the user, password, database and options (the hosts are in ``hosts``).
    """

    redis_url: str = field(repr=False)  # holds the password
    prefix: str
    display: str
    kind: Kind = "server"
    #: The sentinels (``sentinel``) or seed nodes (``cluster``); empty for one server.
    hosts: tuple[tuple[str, int], ...] = ()
    #: The Sentinel service name (``mymaster``).
    service: str = ""
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)
    #: Replicas that must confirm each enqueue (WAIT); 0: none asked.
    wait_replicas: int = 0
    wait_timeout_ms: int = DEFAULT_WAIT_TIMEOUT_MS
    #: Whether the connections use TLS (``rediss://``, ``rediss+sentinel://``).
    tls: bool = False
    #: The ``ssl_*`` options of a TLS Sentinel URL, which its sentinels take too.
    ssl_options: tuple[tuple[str, str], ...] = ()


def parse_url(url: str) -> Target:
    """Read a ``redis://``, ``rediss://``, ``unix://``, ``redis+sentinel://`` or
    ``rediss+sentinel://`` or ``redis+cluster://`` URL; `ConfigError` naming what is
    wrong otherwise."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss", "unix", *SENTINEL_SCHEMES, CLUSTER_SCHEME):
        raise ConfigError(
            f"not a Redis URL: {redact_url(url)!r} (use redis://host:6379/0, rediss://, "
            "redis+sentinel://host:26379/SERVICE/0, rediss+sentinel:// or "
            "redis+cluster://host:7000/)"
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    own = {k: v for k, v in query if k in OWN_OPTIONS}
    rest = [(k, v) for k, v in query if k not in OWN_OPTIONS]
    _check_tls_options(url, scheme, dict(rest))
    if scheme != CLUSTER_SCHEME:  # the Cluster client reads its own options
        _check_redis_options(url, scheme, [k for k, _ in rest])
    common = {
        "prefix": _prefix(own.get("prefix", DEFAULT_PREFIX)),
        "wait_replicas": _count(url, own, "wait_replicas", 0, minimum=0),
        "wait_timeout_ms": _count(url, own, "wait_timeout_ms", DEFAULT_WAIT_TIMEOUT_MS, minimum=1),
        "tls": scheme in ("rediss", TLS_SENTINEL_SCHEME),
    }
    if scheme in ("redis", "rediss", "unix"):
        if "sentinel_password" in own or "sentinel_username" in own:
            raise ConfigError(
                f"sentinel_password in {redact_url(url)!r} needs a Sentinel URL: "
                "redis+sentinel://host:26379/SERVICE/0?sentinel_password=..."
            )
        redis_url = urlunsplit(parts._replace(query=urlencode(rest)))
        return Target(redis_url, display=redact_url(url), **common)  # type: ignore[arg-type]
    return _multi_host(url, scheme, rest, own, common)


def _multi_host(
    url: str,
    scheme: str,
    rest: list[tuple[str, str]],
    own: dict[str, str],
    common: dict[str, object],
) -> Target:
    """A Sentinel or Cluster URL: several ``host:port`` before the path."""
    # urlsplit cannot read "h1:1,h2:2" as a netloc's port, so the netloc is split by hand.
    after = url.split("://", 1)[1]
    netloc, path = _split_netloc(after)
    userinfo, at, hostlist = netloc.rpartition("@")
    sentinel = scheme in SENTINEL_SCHEMES
    example = (
        f"{scheme}://127.0.0.1:26379,127.0.0.1:26380/mymaster/0"
        if sentinel
        else "redis+cluster://127.0.0.1:7000,127.0.0.1:7001/"
    )
    port = DEFAULT_SENTINEL_PORT if sentinel else DEFAULT_PORT
    hosts = tuple(_host(url, h, port, example) for h in hostlist.split(","))
    segments = [unquote(s) for s in path.strip("/").split("/") if s]
    service, db = "", "0"
    if sentinel:
        if not segments or len(segments) > 2:
            raise ConfigError(
                f"{redact_url_multi(url)!r} names no Sentinel service: put it in the path, "
                f"as in {example}"
            )
        service = segments[0]
        db = segments[1] if len(segments) == 2 else "0"
        if not db.isdigit():
            raise ConfigError(
                f"database {db!r} in {redact_url_multi(url)!r} is not a number: "
                f"use /SERVICE/0, as in {example}"
            )
    elif segments and segments != ["0"]:
        raise ConfigError(
            f"{redact_url_multi(url)!r}: a Redis Cluster has only database 0; end the URL "
            f"with '/', as in {example}"
        )
    first_host, first_port = hosts[0]
    host = f"[{first_host}]" if ":" in first_host else first_host
    tls = scheme == TLS_SENTINEL_SCHEME
    redis_url = urlunsplit(
        (
            "rediss" if tls else "redis",
            f"{userinfo}{at}{host}:{first_port}",
            f"/{db}",
            urlencode(rest),
            "",
        )
    )
    return Target(
        redis_url,
        display=redact_url_multi(url),
        kind="sentinel" if sentinel else "cluster",
        hosts=hosts,
        service=service,
        sentinel_username=own.get("sentinel_username") or None,
        sentinel_password=own.get("sentinel_password") or None,
        ssl_options=tuple((k, v) for k, v in rest if k.startswith("ssl_")) if tls else (),
        **common,  # type: ignore[arg-type]
    )


def _split_netloc(after_scheme: str) -> tuple[str, str]:
    """``user:pw@h1:1,h2:2/svc/0?x`` → (``user:pw@h1:1,h2:2``, ``/svc/0``): the netloc ends
    at the first ``/`` after the last ``@`` (a password may hold ``/`` only encoded)."""
    base = after_scheme.split("?", 1)[0].split("#", 1)[0]
    at = base.rfind("@")
    slash = base.find("/", at + 1)
    if slash < 0:
        return base, ""
    return base[:slash], base[slash:]


def _host(url: str, text: str, default_port: int, example: str) -> tuple[str, int]:
    text = text.strip()
    if text.startswith("["):  # [::1]:26379
        host, _, port_text = text[1:].partition("]")
        port_text = port_text.removeprefix(":")
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise ConfigError(
            f"{redact_url_multi(url)!r} has an empty host in its list: write host:port "
            f"pairs separated by commas, as in {example}"
        )
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(
            f"port {port_text!r} of {host} in {redact_url_multi(url)!r} is not a port "
            f"number: write host:port pairs separated by commas, as in {example}"
        )
    return host, int(port_text)


def redact_url_multi(url: str) -> str:
    """A Sentinel or Cluster URL safe to print: the password and secret options masked,
    the host list kept (``redis+sentinel://app:***@h1:26379,h2:26379/mymaster/0``)."""
    return redact_url(url)


def _prefix(prefix: str) -> str:
    if not prefix or any(c in prefix for c in "{}"):
        raise ConfigError(
            f"invalid prefix={prefix!r} in the Redis URL: use a non-empty name without "
            "braces (it becomes the keys' hash tag)"
        )
    return prefix


def _count(url: str, own: dict[str, str], name: str, default: int, *, minimum: int) -> int:
    text = own.get(name)
    if text is None:
        return default
    if not text.strip().isdigit() or int(text) < minimum:
        raise ConfigError(
            f"{name}={text!r} in {_shown(url)!r} is not a whole number of at least "
            f"{minimum}: for instance ?wait_replicas=1&wait_timeout_ms=500"
        )
    return int(text)


def _check_redis_options(url: str, scheme: str, names: list[str]) -> None:
    """Options redis-py does not take would fail every connection with a TypeError: named
    here instead, before connecting."""
    unknown = [
        n for n in names if n not in redis_options(tls=scheme in ("rediss", TLS_SENTINEL_SCHEME))
    ]
    if unknown:
        raise ConfigError(
            f"unknown option {unknown[0]!r} in {_shown(url)!r}: Conveyor reads "
            f"{', '.join(sorted(OWN_OPTIONS))}; redis-py takes its connection options "
            "(socket_timeout, socket_connect_timeout, max_connections, client_name...; "
            "ssl_* with TLS). See the URLs table in docs/redis.md."
        )


@cache
def redis_options(*, tls: bool) -> frozenset[str]:
    """The query options both redis-py clients (sync and asyncio) take for a server."""
    import inspect

    from redis import connection as sync_connection
    from redis.asyncio import connection as async_connection

    def taken(module: object) -> set[str]:
        classes = ["AbstractConnection", "Connection", "UnixDomainSocketConnection"]
        classes += ["SSLConnection"] if tls else []
        names = {"max_connections"}  # the pool's
        for name in classes:
            names.update(inspect.signature(getattr(module, name).__init__).parameters)
        return names - {"self", "args", "kwargs"}

    return frozenset(taken(sync_connection) & taken(async_connection))


def _check_tls_options(url: str, scheme: str, options: dict[str, str]) -> None:
    """TLS options need ``rediss://``, and TLS files must exist: said before connecting."""
    for name in options:
        if not name.startswith("ssl_") or name in SSL_FILES:
            continue
        if scheme in (SENTINEL_SCHEME, "redis", "unix"):
            secure = "rediss+sentinel://" if scheme == SENTINEL_SCHEME else "rediss://"
            raise ConfigError(f"{name} in {_shown(url)!r} needs TLS: use {secure}...?{name}=...")
    for name in SSL_FILES:
        if name not in options:
            continue
        if scheme == SENTINEL_SCHEME:
            raise ConfigError(
                f"{name} in {_shown(url)!r} needs TLS: use "
                f"rediss+sentinel://host:26379/SERVICE/0?{name}=..."
            )
        if scheme not in ("rediss", TLS_SENTINEL_SCHEME):
            raise ConfigError(
                f"{name} in {_shown(url)!r} needs TLS: use rediss://host:6380/0?{name}=..."
            )
        path = options[name]
        if not os.path.isfile(path):
            raise ConfigError(
                f"{name}={quote(path, safe='/')!r} in the Redis URL is not a readable file: "
                f"give the path of the PEM file ({os.path.abspath(path)} does not exist)"
            )


def _shown(url: str) -> str:
    scheme = url.partition("://")[0].lower()
    multi = (*SENTINEL_SCHEMES, CLUSTER_SCHEME)
    return redact_url_multi(url) if scheme in multi else redact_url(url)
