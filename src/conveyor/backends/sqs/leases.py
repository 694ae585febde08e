"""Fencing on SQS: the leases this process holds, and why a late acknowledgement is refused.

SQS hands out a new receipt handle at every receive, and a handle from an earlier receive no
longer controls the message: AWS lets a stale ``DeleteMessage`` succeed without deleting
anything, and SQS-compatible servers differ. So the store does not rely on the server to
say "you lost it". Each claim records, in this book, the message's receipt handle and its
lease expiry on the store's clock, computed *before* the receive was sent (so it is never
later than SQS's own visibility deadline). A lease token is a random key into the book:

* a token whose expiry has passed is refused: the message may already be visible again,
  or received by another worker, whatever its old receipt handle could still do;
* a token that was settled (or is unknown: another process, a restart) is refused;
* an `extend` that succeeds on SQS (``ChangeMessageVisibility``) moves the expiry on.

The book is shared by a handle and its clones (the heartbeat thread uses a clone), under
one lock. An acknowledgement that passes the check is sent at once; SQS's deadline is at
least a network round trip later than the book's, which is the store's margin.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, replace

from conveyor.job import JobRecord

#: Leases expired this long ago are dropped from the book (their calls are refused anyway).
FORGET_AFTER = 3600.0


@dataclass(frozen=True, slots=True)
class Held:
    """A lease this process holds: which message, and the job as it was claimed."""

    queue_url: str
    receipt: str
    job: JobRecord
    expires_at: float


def new_token() -> str:
    """A new lease token: random, and a key into the `LeaseBook`."""
    return secrets.token_hex(16)


class LeaseBook:
    """The leases claimed through one handle and its clones."""

    def __init__(self) -> None:
        self._held: dict[str, Held] = {}
        self._lock = threading.Lock()

    def add(self, token: str, held: Held) -> None:
        """Record a new lease under ``token`` (from `new_token`)."""
        with self._lock:
            self._held[token] = held

    def drop(self, token: str) -> None:
        """Forget a lease that was settled: its token is refused from now on."""
        with self._lock:
            self._held.pop(token, None)

    def holds(self, job_id: str, token: str, now: float) -> Held | None:
        """The lease ``token`` names, if it is ``job_id``'s and still held at ``now``."""
        with self._lock:
            held = self._held.get(token)
        if held is None or held.job.id != job_id or held.expires_at <= now:
            return None
        return held

    def extend(self, token: str, expires_at: float) -> None:
        """Record a new expiry for a lease SQS has just extended."""
        with self._lock:
            held = self._held.get(token)
            if held is not None:
                self._held[token] = replace(held, expires_at=expires_at)

    def forget_expired(self, now: float) -> int:
        """Drop leases long past their expiry; returns how many were dropped."""
        with self._lock:
            old = [t for t, h in self._held.items() if h.expires_at + FORGET_AFTER <= now]
            for token in old:
                del self._held[token]
        return len(old)
