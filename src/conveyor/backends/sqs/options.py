"""What an ``sqs://`` URL says: the region, the server, the queue names and the store's rules.

```
sqs://eu-west-1
sqs://eu-west-1?prefix=shop-&create=false
sqs://us-east-1?endpoint_url=http://127.0.0.1:9324      # an SQS-compatible server
sqs://eu-west-1?fifo=true                               # unique keys as deduplication ids
sqs://eu-west-1?limits=redis://cache:6379/0             # rate limits and slots kept in Redis
```

Credentials never go in the URL: they come from the standard AWS chain (environment,
shared config and credentials files, SSO, the instance or task role).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from conveyor.errors import ConfigError

#: A name SQS accepts: letters, digits, ``-`` and ``_`` (80 characters with ``.fifo``).
NAME = re.compile(r"[A-Za-z0-9_-]*")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+|local")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_KNOWN = ("endpoint_url", "prefix", "create", "fifo", "max_recoveries", "limits")


@dataclass(frozen=True, slots=True)
class SqsOptions:
    """An ``sqs://`` URL, parsed and checked."""

    region: str
    endpoint_url: str | None = None
    #: Put in front of every SQS queue name this store uses (``shop-`` → ``shop-mail-high``).
    prefix: str = "conveyor-"
    #: Create a queue the first time a job is sent to it.
    create: bool = True
    #: FIFO queues: a job's unique key becomes its deduplication id.
    fifo: bool = False
    #: Lost leases (the message came back after its visibility timeout) before a job is dead.
    max_recoveries: int = 3
    #: The URL of a second store that keeps rate limits and concurrency slots.
    limits: str | None = None


def parse_url(url: str) -> SqsOptions:
    """Parse ``sqs://REGION?options``; a `ConfigError` names what is wrong and what to write."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "sqs":
        raise ConfigError(f"the SQS store serves sqs:// URLs, not {parts.scheme}://")
    region = parts.netloc.strip()
    if not _REGION.fullmatch(region):
        raise ConfigError(
            f"sqs:// URL names the region {region!r}, which is not an AWS region name: "
            "write sqs://REGION, for instance sqs://eu-west-1"
        )
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - set(_KNOWN))
    if unknown:
        raise ConfigError(
            f"sqs:// URL has an unknown option {unknown[0]!r}: use {', '.join(_KNOWN)}"
        )
    one = {name: values[-1] for name, values in query.items()}
    prefix = one.get("prefix", "conveyor-")
    if not NAME.fullmatch(prefix) or len(prefix) > 40:
        raise ConfigError(
            f"sqs:// prefix {prefix!r} cannot start an SQS queue name: use at most 40 "
            "letters, digits, '-' and '_'"
        )
    endpoint = one.get("endpoint_url") or None
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        raise ConfigError(
            f"sqs:// endpoint_url {endpoint!r} is not an http:// or https:// URL: "
            "write ?endpoint_url=http://host:port"
        )
    return SqsOptions(
        region=region,
        endpoint_url=endpoint,
        prefix=prefix,
        create=_flag(one, "create", default=True),
        fifo=_flag(one, "fifo", default=False),
        max_recoveries=_count(one.get("max_recoveries", "3")),
        limits=one.get("limits") or None,
    )


def _flag(query: dict[str, str], name: str, *, default: bool) -> bool:
    value = query.get(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ConfigError(f"sqs:// option {name}={value!r} is not a yes/no value: use true or false")


def _count(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ConfigError(
            f"sqs:// option max_recoveries={value!r} is not a whole number of at least 1"
        )
    return number
