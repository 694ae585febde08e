"""Who may reach Conveyor's HTTP endpoints: the rules the dashboard and a worker's debug
endpoints share, with no web framework in sight.

* An endpoint bound to a loopback address may go without authentication, but then only
  answers requests whose ``Host`` names this machine (`is_loopback` of `host_name`): a web
  page cannot reach it through DNS rebinding.
* Any other address needs a secret; a token is at least `MIN_TOKEN_LENGTH` characters
  (`token_problem`), sent as ``Authorization: Bearer <token>`` (`bearer_matches`).
* Secrets are compared in constant time (`same_secret`) and never logged.

`conveyor.dashboard.security` builds the dashboard's sessions and CSRF tokens on these;
`conveyor.debug` guards ``/debug/*`` on the metrics port with them.
"""

from __future__ import annotations

import hmac
import ipaddress

MIN_TOKEN_LENGTH = 16
#: A command that prints a good token.
GENERATE = 'python -c "import secrets; print(secrets.token_urlsafe(24))"'


def is_loopback(host: str) -> bool:
    """Whether binding (or being reached as) ``host`` keeps an endpoint on this machine."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The host of a ``Host`` header, without its port: ``[::1]:8765`` → ``::1``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


def same_secret(a: str, b: str) -> bool:
    """Whether two secrets are equal, in time that does not tell where they differ."""
    return hmac.compare_digest(a.encode(), b.encode())


def token_problem(token: str, name: str) -> str | None:
    """Why ``token`` is too weak to guard an endpoint (``name`` says which), or ``None``."""
    if len(token) < MIN_TOKEN_LENGTH:
        return (
            f"the {name} is {len(token)} characters long; use at least {MIN_TOKEN_LENGTH} "
            f"random ones, e.g. from: {GENERATE}"
        )
    return None


def bearer_matches(authorization: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header value is ``Bearer <token>``."""
    scheme, _, value = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and same_secret(value.strip(), token)
