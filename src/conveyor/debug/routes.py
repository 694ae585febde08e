"""``/debug/stacks`` and ``/debug/profile``: who may ask (`conveyor.access`), and the answers.

Independent of the HTTP server that carries them: `DebugRoutes.handle` takes the path, the
query and the two headers that matter, and returns a `Reply`.

Access, as for the dashboard: with ``CONVEYOR_DEBUG_TOKEN`` set, every request needs
``Authorization: Bearer <token>``. Without it the paths answer only when the server is
bound to a loopback address, and only to requests whose ``Host`` is a loopback name (a web
page cannot reach them through DNS rebinding); a server bound anywhere else keeps them off.
A token shorter than `MIN_TOKEN_LENGTH` stops the server at start.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from dataclasses import dataclass
from urllib.parse import parse_qs

from conveyor.access import (
    GENERATE,
    MIN_TOKEN_LENGTH,
    bearer_matches,
    host_name,
    is_loopback,
    token_problem,
)
from conveyor.debug import profile, stacks
from conveyor.errors import ConfigError

#: The variable holding the token that guards the debug paths.
TOKEN_ENV = "CONVEYOR_DEBUG_TOKEN"  # noqa: S105 - a variable's name, not a secret
TEXT = "text/plain; charset=utf-8"
JSON = "application/json"

INDEX = """\
/debug/stacks                      every thread's stack and asyncio task's awaits (text)
/debug/stacks?format=json          the same as JSON
/debug/profile?seconds=10          a CPU profile of every thread, as pyinstrument's HTML page
/debug/profile?seconds=10&format=speedscope   the same as speedscope JSON (speedscope.app)
"""


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer: status, body and its content type."""

    status: int
    body: bytes
    content_type: str = TEXT

    @classmethod
    def text(cls, status: int, message: str) -> Reply:
        """A plain-text answer (a newline is added)."""
        return cls(status, (message + "\n").encode())


class DebugRoutes:
    """The debug paths of one server bound to ``host``; ``loop`` is the event loop whose
    tasks `/debug/stacks` lists (set when the server starts on it)."""

    def __init__(
        self,
        *,
        host: str,
        token: str | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        token = token or None
        if token is not None:
            problem = token_problem(token, f"debug token ({TOKEN_ENV})")
            if problem is not None:
                raise ConfigError(problem)
        self.host = host
        self.token = token
        self.loop = loop
        self._profiling = threading.Lock()

    @classmethod
    def from_env(cls, host: str) -> DebugRoutes:
        """Routes guarded by ``$CONVEYOR_DEBUG_TOKEN`` when it is set."""
        return cls(host=host, token=os.environ.get(TOKEN_ENV))

    @property
    def enabled(self) -> bool:
        """Whether any request can get through (a token, or a loopback address)."""
        return self.token is not None or is_loopback(self.host)

    def handle(
        self, path: str, query: str, *, host_header: str | None, authorization: str | None
    ) -> Reply:
        """Answer one GET of a ``/debug`` path (on the server's thread; may take seconds)."""
        refused = self.refusal(host_header, authorization)
        if refused is not None:
            return refused
        params = {k: v[-1] for k, v in parse_qs(query).items()}
        if path == "/debug/stacks":
            return self._stacks(params.get("format", "text"))
        if path == "/debug/profile":
            return self._profile(params)
        if path in ("/debug", "/debug/"):
            return Reply.text(200, INDEX.rstrip())
        return Reply.text(404, f"not found: {path}; the debug paths are:\n{INDEX.rstrip()}")

    def refusal(self, host_header: str | None, authorization: str | None) -> Reply | None:
        """Why this request may not see the debug paths (``None``: it may)."""
        if self.token is not None:
            if bearer_matches(authorization, self.token):
                return None
            return Reply.text(
                401,
                f"the debug paths need 'Authorization: Bearer <token>' with the worker's "
                f"{TOKEN_ENV} (conveyor debug --token, or the same variable)",
            )
        if not is_loopback(self.host):
            return Reply.text(
                403,
                f"the debug paths are off: this server listens on {self.host}, beyond this "
                f"machine, and {TOKEN_ENV} is not set. Set it on the worker ({MIN_TOKEN_LENGTH}+ "
                f"random characters, e.g. from: {GENERATE}) and send it as a bearer token, "
                "or bind the metrics port to 127.0.0.1",
            )
        host = host_name(host_header or "")
        if not is_loopback(host):
            return Reply.text(
                403,
                f"Host {host!r} is not a loopback name: without {TOKEN_ENV} the debug paths "
                "answer only to localhost, 127.0.0.1 and [::1] (a guard against DNS rebinding)",
            )
        return None

    def _stacks(self, fmt: str) -> Reply:
        if fmt not in ("text", "json"):
            return Reply.text(400, f"format={fmt!r} is not known; give format=text or format=json")
        dump = stacks.take(self.loop)
        if fmt == "json":
            return Reply(200, json.dumps(dump.to_json(), indent=1).encode(), JSON)
        return Reply(200, dump.to_text().encode())

    def _profile(self, params: dict[str, str]) -> Reply:
        fmt = params.get("format", "html")
        if fmt not in profile.FORMATS:
            return Reply.text(
                400, f"format={fmt!r} is not known; give format=html or format=speedscope"
            )
        try:
            seconds = profile.check_seconds(params.get("seconds"))
        except ValueError as exc:
            return Reply.text(400, str(exc))
        missing = profile.available()
        if missing is not None:
            return Reply.text(501, missing)
        if not self._profiling.acquire(blocking=False):
            return Reply.text(409, "a profile is being taken already; ask again when it ends")
        try:
            session = profile.record(seconds)
        finally:
            self._profiling.release()
        return Reply(200, profile.render(session, fmt), profile.FORMATS[fmt])
