"""The app of the rate- and concurrency-limit acceptance tests, run in real worker processes.

``limits.call_api`` calls the test's local HTTP API (``LIMITS_API_URL``) under
``rate_limit="45/s"`` and turns an HTTP 429 into `RateLimited`; ``limits.per_account`` runs
one job at a time per account. Both write the shared ledger (`ledger_app.record`).
"""

from __future__ import annotations

import asyncio
import os
import time
import urllib.error
import urllib.request

from conveyor import Conveyor, RateLimited

try:  # a worker loads this module from its directory, the tests as a package module
    from ledger_app import record
except ImportError:
    from tests.acceptance.ledger_app import record

API_ENV = "LIMITS_API_URL"
CALL = "limits.call_api"
ACCOUNT = "limits.per_account"
RATE = 45


def build_app(url: str | None = None) -> Conveyor:
    """The limits app on ``url`` (default: ``CONVEYOR_URL``)."""
    app = Conveyor(url)

    @app.task(name=CALL, rate_limit=f"{RATE}/s", retries=3)
    def call_api(n: int) -> int:
        """One request to the API; a 429 waits for its Retry-After without using an attempt."""
        # The request comes first: a ledger write (an fsync) between the worker's start
        # and the request would only add jitter to when the API sees it.
        sent = time.time()
        try:
            with urllib.request.urlopen(f"{os.environ[API_ENV]}/call?n={n}", timeout=10) as r:
                r.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 429:
                raise RateLimited(float(exc.headers.get("Retry-After", "1"))) from exc
            raise
        record("start", n=n, sent=sent)
        record("end", n=n)
        return n

    @app.task(name=ACCOUNT, max_concurrency=1, concurrency_key=lambda account, n, seconds: account)
    async def per_account(account: str, n: int, seconds: float) -> None:
        """Hold the account's one slot for ``seconds``."""
        record("start", account=account, n=n)
        await asyncio.sleep(seconds)
        record("end", account=account, n=n)

    return app


app = build_app()
