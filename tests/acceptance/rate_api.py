"""A stand-in for a rate-limited HTTP API, run as its own process by the rate-limit test.

It answers ``GET /call`` with 200, or with 429 and ``Retry-After: 1`` once it has seen
``--rate`` requests in the last second (a sliding window, counting every request), and
``GET /stats`` with every arrival time and the number of 429s. It runs in its own process,
on one asyncio loop (no thread per request) and at a raised scheduling priority where
allowed, so its clock readings are close to when requests really arrive. Prints its port
on the first line of stdout and serves until terminated.

    python tests/acceptance/rate_api.py --rate 45
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections import deque


class RateLimitedApi:
    """Counts requests in a one-second sliding window and refuses those over ``rate``."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.recent: deque[float] = deque()
        self.arrivals: list[float] = []
        self.rejected = 0

    def admit(self, now: float) -> bool:
        self.arrivals.append(now)
        while self.recent and now - self.recent[0] >= 1.0:
            self.recent.popleft()
        self.recent.append(now)
        if len(self.recent) > self.rate:
            self.rejected += 1
            return False
        return True

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await reader.readline()
            now = time.monotonic()
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # headers: GET requests have no body
            path = request_line.split(b" ")[1] if request_line.count(b" ") >= 2 else b"/"
            if path.startswith(b"/stats"):
                body = json.dumps({"arrivals": self.arrivals, "rejected": self.rejected})
                status, extra = "200 OK", ""
            elif self.admit(now):
                body, status, extra = "ok", "200 OK", ""
            else:
                body, status, extra = "slow down", "429 Too Many Requests", "Retry-After: 1\r\n"
            data = body.encode()
            writer.write(
                f"HTTP/1.1 {status}\r\n{extra}Content-Length: {len(data)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + data
            )
            await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def serve(rate: int) -> None:
    api = RateLimitedApi(rate)
    server = await asyncio.start_server(api.handle, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    sys.stdout.close()
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, required=True)
    with contextlib.suppress(OSError):  # a measuring instrument goes first (needs root)
        os.setpriority(os.PRIO_PROCESS, 0, -10)
    asyncio.run(serve(parser.parse_args().rate))


if __name__ == "__main__":
    main()
