"""Who may look and who may act: authentication, sessions, CSRF tokens, proxies, headers.

* Authentication is optional on loopback and required elsewhere (the CLI refuses to bind a
  public address without it, and without a token or password strong enough). A token is
  sent as ``Authorization: Bearer <token>`` or typed once into ``/login``, which sets a
  session cookie: a random id and its issue time, signed, that expires after
  ``session_max_age`` (checked on the server too) and ends at ``POST /logout``. A
  password is HTTP basic auth.
* Failed credentials are throttled per client address (`conveyor.dashboard.throttle`).
* Every POST carries a CSRF token bound to the session: an HMAC, with the dashboard's
  secret, of the session id (token login), of the basic-auth credentials, or, without
  authentication, of a random browser id kept in a signed ``SameSite=Strict`` cookie. A
  token fetched by someone else (another session, or an unauthenticated visitor) never
  matches. None is handed out on a 401. A request that authenticates with a bearer token
  needs none: a browser never adds that header on its own, so it cannot be forged.
* ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed only from trusted proxies.
* Secrets are compared with `hmac.compare_digest` and never logged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import secrets
import time
from collections.abc import Callable, Iterable, Sequence

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection

from conveyor import access
from conveyor.dashboard.throttle import LoginThrottle

# The rules the dashboard shares with the debug paths (`conveyor.access`), under the names
# the dashboard's modules import from here.
MIN_TOKEN_LENGTH = access.MIN_TOKEN_LENGTH
GENERATE = access.GENERATE
is_loopback = access.is_loopback
host_name = access.host_name
_same = access.same_secret

CSRF_COOKIE = "conveyor_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SESSION_COOKIE = "conveyor_session"
#: Seconds a login session lasts by default.
DEFAULT_SESSION_MAX_AGE = 12 * 3600.0
MIN_PASSWORD_LENGTH = 8
#: The longest queue name the pause and resume actions accept.
MAX_QUEUE_NAME = 200

#: Sent with every response, errors included: no remote script, style, frame or form target.
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

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_basic_auth(value: str | tuple[str, str] | None) -> tuple[str, str] | None:
    """``"user:password"`` or ``(user, password)``; a bare ``"password"`` means user admin."""
    if value is None or isinstance(value, tuple):
        return value
    user, sep, password = value.partition(":")
    return (user, password) if sep else ("admin", value)


def credentials_problem(token: str | None, basic_auth: str | tuple[str, str] | None) -> str | None:
    """Why ``token`` or ``basic_auth`` is too weak to guard a dashboard, or ``None``."""
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        return (
            f"the dashboard token is {len(token)} characters long; use at least "
            f"{MIN_TOKEN_LENGTH} random ones, e.g. from: {GENERATE}"
        )
    pair = parse_basic_auth(basic_auth)
    if pair is not None:
        user, password = pair
        if not user.strip():
            return "the dashboard password needs a user name: give 'user:password'"
        if len(password) < MIN_PASSWORD_LENGTH:
            return (
                f"the dashboard password is {len(password)} characters long; use at least "
                f"{MIN_PASSWORD_LENGTH}, e.g. from: {GENERATE}"
            )
    return None


def queue_problem(name: str) -> str | None:
    """Why ``name`` cannot be a queue to pause or resume, or ``None``.

    Only the form is checked, not existence: pausing a queue before its first job is
    enqueued is how a deploy holds back work it is about to send.
    """
    if not name.strip():
        return "the queue name is empty: give the name of the queue to pause or resume"
    if len(name) > MAX_QUEUE_NAME:
        return f"the queue name is {len(name)} characters long; the limit is {MAX_QUEUE_NAME}"
    if any(ord(c) < 32 or ord(c) == 127 or 0x80 <= ord(c) < 0xA0 for c in name):
        return f"the queue name {name!r} holds a control character; queue names are plain text"
    if name != name.strip():
        return f"the queue name {name!r} starts or ends with a space"
    return None


def checked_queue(conn: HTTPConnection) -> str:
    """The ``{queue}`` path parameter, or 400 saying what is wrong with it."""
    name = str(conn.path_params.get("queue", ""))
    problem = queue_problem(name)
    if problem is not None:
        raise HTTPException(400, problem)
    return name


def parse_proxies(values: Iterable[str]) -> tuple[Network, ...]:
    """Addresses or networks (``10.0.0.1``, ``10.0.0.0/8``, commas allowed) to trust."""
    out: list[Network] = []
    for value in values:
        for item in (v.strip() for v in value.split(",")):
            if not item:
                continue
            try:
                out.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(
                    f"trusted proxy {item!r} is not an IP address or network "
                    "(e.g. 10.0.0.1 or 10.0.0.0/8)"
                ) from None
    return tuple(out)


class Guard:
    """The dashboard's secrets and the checks made with them."""

    def __init__(
        self,
        *,
        secret: bytes,
        token: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        session_max_age: float = DEFAULT_SESSION_MAX_AGE,
        trusted_proxies: Sequence[Network] = (),
        secure_cookies: bool = False,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.secret = secret
        self.token = token
        self.basic_auth = basic_auth
        self.session_max_age = session_max_age
        self.trusted_proxies = tuple(trusted_proxies)
        self.secure_cookies = secure_cookies
        self.now = now
        self.throttle = LoginThrottle(now)
        # Logged-out session ids, until they would have expired anyway.
        self._revoked: dict[str, float] = {}

    @classmethod
    def create(
        cls,
        *,
        token: str | None,
        basic_auth: str | tuple[str, str] | None,
        secret_key: str | None,
        session_max_age: float = DEFAULT_SESSION_MAX_AGE,
        trusted_proxies: Iterable[str] = (),
        secure_cookies: bool = False,
        now: Callable[[], float] = time.time,
    ) -> Guard:
        """A guard with ``secret_key`` (random per process when not given)."""
        secret = secret_key.encode() if secret_key else secrets.token_bytes(32)
        return cls(
            secret=secret,
            token=token or None,
            basic_auth=parse_basic_auth(basic_auth),
            session_max_age=session_max_age,
            trusted_proxies=parse_proxies(trusted_proxies),
            secure_cookies=secure_cookies,
            now=now,
        )

    @property
    def required(self) -> bool:
        """Whether requests must authenticate."""
        return self.token is not None or self.basic_auth is not None

    # -- authentication ------------------------------------------------------------------
    def authenticated(self, conn: HTTPConnection) -> bool:
        """Whether ``conn`` may see the dashboard."""
        if not self.required:
            return True
        return self.bearer(conn) or self.basic(conn) or self.session_id(conn) is not None

    def offers_credentials(self, conn: HTTPConnection) -> bool:
        """Whether ``conn`` sends an ``Authorization`` header (a guess, when wrong)."""
        return bool(conn.headers.get("authorization"))

    def bearer(self, conn: HTTPConnection) -> bool:
        """Whether ``conn`` carries ``Authorization: Bearer <token>`` with the right token."""
        if self.token is None:
            return False
        scheme, _, value = conn.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and _same(value.strip(), self.token)

    def basic(self, conn: HTTPConnection) -> bool:
        """Whether ``conn`` carries the right basic-auth user and password."""
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

    def check_token(self, candidate: str) -> bool:
        """Whether a token typed into the login form is the right one."""
        return self.token is not None and _same(candidate, self.token)

    # -- sessions ------------------------------------------------------------------------
    def new_session(self) -> str:
        """A fresh session cookie value after a token login: ``id.issued.signature``."""
        assert self.token is not None
        sid = secrets.token_urlsafe(18)
        issued = str(int(self.now()))
        return f"{sid}.{issued}.{self._session_sig(sid, issued)}"

    def session_id(self, conn: HTTPConnection) -> str | None:
        """The id of ``conn``'s session when its cookie is ours, current and not expired."""
        cookie = conn.cookies.get(SESSION_COOKIE)
        if not cookie or self.token is None:
            return None
        sid, _, rest = cookie.partition(".")
        issued, _, signature = rest.partition(".")
        if not (sid and issued.isdigit() and _same(signature, self._session_sig(sid, issued))):
            return None
        age = self.now() - int(issued)
        if not -60 <= age < self.session_max_age or sid in self._revoked:
            return None
        return sid

    def end_session(self, conn: HTTPConnection) -> None:
        """Refuse ``conn``'s session from now on, even if its cookie was kept (logout)."""
        sid = self.session_id(conn)
        now = self.now()
        self._revoked = {s: t for s, t in self._revoked.items() if t > now}
        if sid is not None:
            self._revoked[sid] = now + self.session_max_age

    def _session_sig(self, sid: str, issued: str) -> str:
        # The token is in the signed text: a new token ends every session made with the old.
        return self.sign(f"session:{sid}:{issued}:{self.token}")

    # -- CSRF ----------------------------------------------------------------------------
    def new_browser_id(self) -> str:
        """A fresh value for the CSRF cookie: a random browser id, signed."""
        nonce = secrets.token_urlsafe(24)
        return f"{nonce}.{self.sign(f'browser:{nonce}')}"

    def valid_browser_id(self, value: str | None) -> bool:
        """Whether ``value`` was made by `new_browser_id` with this dashboard's secret."""
        nonce, _, signature = (value or "").partition(".")
        return bool(nonce) and self.verify(f"browser:{nonce}", signature)

    def csrf_token(self, conn: HTTPConnection, browser_id: str | None) -> str:
        """The CSRF token of ``conn``'s session (``browser_id``: its CSRF cookie)."""
        return self.sign(f"csrf:{self._binding(conn, browser_id)}")

    def csrf_matches(self, conn: HTTPConnection, submitted: str | None) -> bool:
        """Whether ``submitted`` is the CSRF token of ``conn``'s own session."""
        cookie = conn.cookies.get(CSRF_COOKIE)
        if not submitted or not self.valid_browser_id(cookie):
            return False
        return _same(submitted, self.csrf_token(conn, cookie))

    def _binding(self, conn: HTTPConnection, browser_id: str | None) -> str:
        sid = self.session_id(conn)
        if sid is not None:
            return f"session:{sid}"
        if self.basic(conn):
            assert self.basic_auth is not None
            return "basic:" + ":".join(self.basic_auth)
        return f"browser:{browser_id or ''}"

    # -- proxies -------------------------------------------------------------------------
    def _trusted(self, address: str | None) -> bool:
        if not address or not self.trusted_proxies:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.trusted_proxies)

    def client_address(self, conn: HTTPConnection) -> str:
        """The client's address: the peer's, or from ``X-Forwarded-For`` when the peer is a
        trusted proxy (the nearest address not itself a trusted proxy)."""
        peer = conn.client.host if conn.client else ""
        if not self._trusted(peer):
            return peer
        hops = [h.strip() for h in conn.headers.get("x-forwarded-for", "").split(",")]
        for hop in reversed([h for h in hops if h]):
            if not self._trusted(hop):
                return hop
        return peer

    def secure(self, conn: HTTPConnection) -> bool:
        """Whether cookies get ``Secure``: forced, HTTPS, or HTTPS at a trusted proxy."""
        if self.secure_cookies or conn.url.scheme in ("https", "wss"):
            return True
        peer = conn.client.host if conn.client else ""
        proto = conn.headers.get("x-forwarded-proto", "").split(",")[-1].strip().lower()
        return self._trusted(peer) and proto == "https"

    # -- signatures ----------------------------------------------------------------------
    def sign(self, message: str) -> str:
        """An HMAC-SHA256 of ``message`` with the dashboard's secret, in hex."""
        return hmac.new(self.secret, message.encode(), hashlib.sha256).hexdigest()

    def verify(self, message: str, signature: str) -> bool:
        """Whether ``signature`` is `sign` of ``message``."""
        return _same(signature, self.sign(message))
