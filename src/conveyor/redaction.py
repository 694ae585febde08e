"""Secrets out of what we print: one place that knows how a URL or a message hides them.

Every URL Conveyor shows (CLI headers, ``status --json``, dashboard header and banners,
error messages, ``repr()`` of the app and its settings) goes through `redact_url`; free text
that may quote a URL (a driver's exception) goes through `redact_text`.

What counts as secret:

* the password of ``scheme://user:password@host`` (the user name is kept: it helps, and
  is not a credential by itself), whatever the password holds (``@``, ``:``, ``%40``);
* the value of a query or fragment parameter whose name mentions a password, secret,
  token or key of the same kind (``?password=``, ``sentinel_password``, ``sslpassword``,
  ``token``, ``api_key``, ...).

A URL that cannot be read with certainty (a password holding ``/``, ``?`` or ``#`` unencoded,
a broken port, a missing ``://``) is redacted conservatively: everything that could be
part of a password goes, because a hint in an error message is never worth a leaked
secret.
"""

from __future__ import annotations

import os
import re
from urllib.parse import quote, unquote, unquote_plus, urlsplit

MASK = "***"

#: Parameter names whose values are secret: any name containing one of these.
_SECRET_PARTS = (
    "password",
    "passwd",
    "secret",
    "token",
    "credential",
    "apikey",
    "api_key",
    "access_key",
    "private_key",
    "auth",
)
#: Parameter names that are secret only as a whole (too short to match inside others).
_SECRET_NAMES = frozenset({"pwd", "pass", "key", "sig", "signature"})

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*$")
# A URL inside free text: scheme, "://", then anything up to whitespace or a quote.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
# ``password=...`` outside a URL (libpq conninfo strings, driver messages).
_KEY_VALUE = re.compile(
    r"(?P<key>\b[A-Za-z_][\w\-]*)(?P<eq>\s*=\s*)(?P<value>'[^']*'|\"[^\"]*\"|[^\s&;,'\"]+)"
)


def is_secret_name(name: str) -> bool:
    """Whether a parameter called ``name`` holds a secret (``sentinel_password``: yes)."""
    key = name.strip().lower()
    return key in _SECRET_NAMES or any(part in key for part in _SECRET_PARTS)


def redact_url(url: str) -> str:
    """``url`` safe to print: its password and secret parameters replaced by ``***``.

    ``redis://:p@ss@host/0?sentinel_password=x`` → ``redis://:***@host/0?sentinel_password=***``.
    A URL that cannot be parsed with certainty loses everything that could be a password.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or not _SCHEME.match(scheme):
        return _redact_schemeless(url)
    listed = _redact_host_list(scheme, rest)
    if listed is not None:
        return listed
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a broken port (a password with a '/')
    except ValueError:
        return _opaque(scheme, rest)
    netloc = parts.netloc
    # An '@' after the host (outside query values) means the netloc was cut short by an
    # unencoded '/', '?' or '#' in a password: the text before that '@' may be secret.
    query_keys = [p.partition("=")[0] for p in re.split(r"[&;]", parts.query)]
    if netloc and any("@" in piece for piece in (parts.path, parts.fragment, *query_keys)):
        return _opaque(scheme, rest)
    userinfo, at, host = netloc.rpartition("@")
    if at and ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{host}"
    out = f"{scheme}://{netloc}{parts.path}"
    if parts.query or url.endswith("?"):
        out += "?" + redact_params(parts.query)
    if parts.fragment:
        out += "#" + redact_params(parts.fragment)
    return out


#: One ``host`` or ``host:port`` of a host list (``[::1]:6379`` too).
_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._\-]+)(:[0-9]{1,5})?$")


def _redact_host_list(scheme: str, rest: str) -> str | None:
    """A URL naming several servers (``redis+sentinel://u:pw@h1:26379,h2:26379/svc``),
    redacted with its hosts kept; ``None`` when ``rest`` is not such a netloc."""
    base = rest.split("?", 1)[0].split("#", 1)[0]
    at = base.rfind("@")
    slash = base.find("/", at + 1)
    netloc, path = (base, "") if slash < 0 else (base[:slash], base[slash:])
    userinfo, sep, hosts = netloc.rpartition("@")
    pieces = hosts.split(",")
    if len(pieces) < 2 or not all(_HOST_PORT.match(p.strip()) for p in pieces):
        return None
    if ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":" + MASK
    out = f"{scheme}://{userinfo}{sep}{hosts}{path}"
    after = rest[len(base) :]
    query, mark, fragment = after.removeprefix("?").partition("#")
    if after.startswith("?"):
        out += "?" + redact_params(query)
    if mark or after.startswith("#"):
        out += "#" + redact_params(fragment if mark else after[1:])
    return out


def display_url(url: str) -> str:
    """``url`` as a banner, a title or a report shows it: redacted (`redact_url`), and a
    relative SQLite path made absolute (``sqlite:///conveyor.db`` →
    ``sqlite:////srv/app/conveyor.db``), since whoever reads the line cannot see the
    directory the path was relative to.
    """
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() == "sqlite" and rest.startswith("/") and rest[1:2] not in "/:":
        path, mark, query = rest[1:].partition("?")
        if not path.startswith("file:"):
            absolute = quote(os.path.abspath(unquote(path)), safe="/")
            url = f"{scheme}:///{absolute}{mark}{query}"
    return redact_url(url)


def redact_params(query: str) -> str:
    """``a=1&password=x`` → ``a=1&password=***``: every secret parameter's value masked,
    and a URL given as a value (``limits=redis://:pw@host``, plain or percent-encoded)
    redacted in turn."""
    pieces = re.split(r"([&;])", query)
    for i in range(0, len(pieces), 2):
        key, eq, value = pieces[i].partition("=")
        if eq and is_secret_name(_unquote_key(key)):
            pieces[i] = f"{key}={MASK}"
        elif eq and "://" in (inner := unquote_plus(value)):
            pieces[i] = f"{key}={redact_url(inner)}"
    return "".join(pieces)


def redact_text(text: str) -> str:
    """``text`` (an error message, a log line) with every URL in it redacted, and every
    ``password=...`` style pair outside URLs masked too."""
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)

    def pair(m: re.Match[str]) -> str:
        if not is_secret_name(m.group("key")) or m.group("value") == MASK:
            return m.group(0)
        return f"{m.group('key')}{m.group('eq')}{MASK}"

    return _KEY_VALUE.sub(pair, text)


def origin(url: str) -> str:
    """Only ``scheme://host`` of ``url`` (port kept), for URLs whose path is the secret
    (a Slack webhook): ``https://hooks.slack.com/services/T/B/X`` → ``https://hooks.slack.com/***``.
    """
    scheme, sep, rest = url.strip().partition("://")
    if not sep or not _SCHEME.match(scheme):
        # No scheme: the first piece is the host when it looks like one (no user part).
        host = re.split(r"[/?#]", url.strip(), maxsplit=1)[0]
        return f"{host}/{MASK}" if re.fullmatch(r"[A-Za-z0-9.\-]+", host) else MASK
    host = re.split(r"[/?#]", rest, maxsplit=1)[0].rpartition("@")[2]
    return f"{scheme}://{host}/{MASK}" if host else f"{scheme}://{MASK}"


def _opaque(scheme: str, rest: str) -> str:
    # Keep what follows the last '@' when it looks like a plain host, so the message still
    # says where; everything before it may be a password.
    host = rest.rpartition("@")[2] if "@" in rest else ""
    if host and re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+(/[\w.\-]*)?", host):
        return f"{scheme}://{MASK}@{host}"
    return f"{scheme}://{MASK}"


def _redact_schemeless(text: str) -> str:
    # "user:pw@host" or "redis:/:pw@host": anything before the last '@' may be secret.
    base, qm, query = text.partition("?")
    if "@" in base:
        base = f"{MASK}@{base.rpartition('@')[2]}"
    return base + (qm + redact_params(query) if qm else "")


def _unquote_key(key: str) -> str:
    return unquote_plus(key)
