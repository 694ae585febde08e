"""Who may look and who may act: authentication, CSRF tokens and the response headers.

* Authentication is optional on loopback and required elsewhere (the CLI refuses to bind a
  public address without it). A token is sent as ``Authorization: Bearer <token>`` or typed
  once into ``/login``, which sets a signed session cookie; a password is HTTP basic auth.
* Every POST carries a CSRF token: a random nonce signed with the dashboard's secret, held
  in a ``SameSite=Strict`` cookie and repeated in the form field ``csrf_token`` or the
  ``X-CSRF-Token`` header (double submit). A request that authenticates with a bearer
  token needs none: a browser never adds that header on its own, so it cannot be forged.
* Secrets are compared with `hmac.compare_digest` and never logged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass

from starlette.requests import HTTPConnection

CSRF_COOKIE = "conveyor_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SESSION_COOKIE = "conveyor_session"

#: Sent with every response: no remote script, style, frame or form target.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the dashboard on this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_basic_auth(value: str | tuple[str, str] | None) -> tuple[str, str] | None:
    """``"user:password"`` or ``(user, password)``; a bare ``"password"`` means user admin."""
    if value is None or isinstance(value, tuple):
        return value
    user, sep, password = value.partition(":")
    return (user, password) if sep else ("admin", value)


@dataclass(slots=True, frozen=True)
class Guard:
    """The dashboard's secrets and the checks made with them."""

    secret: bytes
    token: str | None = None
    basic_auth: tuple[str, str] | None = None

    @classmethod
    def create(
        cls,
        *,
        token: str | None,
        basic_auth: str | tuple[str, str] | None,
        secret_key: str | None,
    ) -> Guard:
        """A guard with ``secret_key`` (random per process when not given)."""
        secret = secret_key.encode() if secret_key else secrets.token_bytes(32)
        return cls(secret=secret, token=token or None, basic_auth=parse_basic_auth(basic_auth))

    @property
    def required(self) -> bool:
        """Whether requests must authenticate."""
        return self.token is not None or self.basic_auth is not None

    # -- authentication ------------------------------------------------------------------
    def authenticated(self, conn: HTTPConnection) -> bool:
        """Whether ``conn`` may see the dashboard."""
        if not self.required:
            return True
        return self.bearer(conn) or self._basic(conn) or self._session(conn)

    def bearer(self, conn: HTTPConnection) -> bool:
        """Whether ``conn`` carries ``Authorization: Bearer <token>`` with the right token."""
        if self.token is None:
            return False
        scheme, _, value = conn.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and _same(value.strip(), self.token)

    def _basic(self, conn: HTTPConnection) -> bool:
        if self.basic_auth is None:
            return False
        scheme, _, value = conn.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, _, password = decoded.partition(":")
        expected_user, expected_password = self.basic_auth
        # Both compared, always, so timing does not tell which one was wrong.
        return _same(user, expected_user) & _same(password, expected_password)

    def _session(self, conn: HTTPConnection) -> bool:
        cookie = conn.cookies.get(SESSION_COOKIE)
        return cookie is not None and self.token is not None and _same(cookie, self.session())

    def session(self) -> str:
        """The session cookie's value after a token login (changes with the token)."""
        assert self.token is not None
        return self.sign(f"session:{self.token}")

    def check_token(self, candidate: str) -> bool:
        """Whether a token typed into the login form is the right one."""
        return self.token is not None and _same(candidate, self.token)

    # -- CSRF ----------------------------------------------------------------------------
    def new_csrf(self) -> str:
        """A fresh CSRF token: ``nonce.signature``."""
        nonce = secrets.token_urlsafe(24)
        return f"{nonce}.{self.sign(nonce)}"

    def valid_csrf(self, token: str | None) -> bool:
        """Whether ``token`` was made by `new_csrf` with this dashboard's secret."""
        if not token:
            return False
        nonce, _, signature = token.partition(".")
        return bool(nonce) and self.verify(nonce, signature)

    def csrf_matches(self, cookie: str | None, submitted: str | None) -> bool:
        """Double submit: the cookie is ours and the form or header repeats it."""
        return self.valid_csrf(cookie) and submitted is not None and _same(submitted, cookie or "")

    def sign(self, message: str) -> str:
        """An HMAC-SHA256 of ``message`` with the dashboard's secret, in hex."""
        return hmac.new(self.secret, message.encode(), hashlib.sha256).hexdigest()

    def verify(self, message: str, signature: str) -> bool:
        """Whether ``signature`` is `sign` of ``message``."""
        return _same(signature, self.sign(message))


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
