"""Login throttling: failed credential attempts per client address slow that address down.

The first `FREE_FAILURES` failures inside `WINDOW` seconds cost nothing (people mistype);
after that each failure locks the address out for a delay that doubles, up to `MAX_DELAY`.
A locked-out address gets 429 with ``Retry-After`` for every credential it sends, right or
wrong, so guessing never gets faster than the lockout allows. A success clears the record.

State is per process and bounded (`MAX_CLIENTS` addresses, oldest dropped first): a
dashboard served by several processes throttles in each, which still caps guessing.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

#: Failures inside the window that cost nothing.
FREE_FAILURES = 5
#: Seconds a failure is remembered.
WINDOW = 15 * 60.0
#: The first lockout, doubled for each further failure in the window.
BASE_DELAY = 1.0
#: The longest lockout.
MAX_DELAY = 15 * 60.0
#: Addresses remembered at most (a flood of addresses cannot grow memory without bound).
MAX_CLIENTS = 10_000


@dataclass(slots=True)
class _Record:
    failures: list[float] = field(default_factory=list)
    locked_until: float = 0.0


class LoginThrottle:
    """Failed attempts by client address, and the lockout they earn."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._clients: OrderedDict[str, _Record] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> float:
        """Seconds ``client`` must wait before its credentials are looked at (0: now)."""
        with self._lock:
            record = self._clients.get(client)
            if record is None:
                return 0.0
            return max(0.0, record.locked_until - self._now())

    def failure(self, client: str) -> float:
        """Count a failed attempt by ``client``; the lockout it now has (0: none)."""
        now = self._now()
        with self._lock:
            record = self._clients.pop(client, None) or _Record()
            record.failures = [t for t in record.failures if now - t < WINDOW] + [now]
            extra = len(record.failures) - FREE_FAILURES
            if extra > 0:
                delay = min(MAX_DELAY, BASE_DELAY * 2 ** min(extra - 1, 30))
                record.locked_until = now + delay
            self._clients[client] = record  # most recent last
            while len(self._clients) > MAX_CLIENTS:
                self._clients.popitem(last=False)
            return max(0.0, record.locked_until - now)

    def success(self, client: str) -> None:
        """Forget ``client``'s failures: it knows the secret."""
        with self._lock:
            self._clients.pop(client, None)
