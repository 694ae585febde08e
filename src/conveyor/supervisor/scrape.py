"""Reading the supervised workers' own ``/metrics`` at the supervisor's scrape time.

Under ``conveyor run --metrics-port`` each worker serves its metrics on an ephemeral
loopback port (``--metrics-port 0``) and writes the port it bound to ``<dir>/<pid>``
(`conveyor.worker.companions.publish_port`). A scrape of the supervisor reads every
worker's page in parallel, each with a short timeout, and merges their families, adding
``worker`` and ``pool`` labels. The whole-store families (`BACKEND_FAMILIES`) are dropped:
the supervisor reads the store once itself, so nothing is counted twice.
"""

from __future__ import annotations

import contextlib
import os
import time
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from conveyor.metrics.collector import BACKEND_FAMILIES

#: Seconds a supervisor's scrape waits for one worker's page.
SCRAPE_TIMEOUT = 2.0
#: Port files of processes no longer supervised are removed once this old (seconds).
STALE_AFTER = 60.0


@dataclass(frozen=True, slots=True)
class Target:
    """One supervised worker process to read."""

    pool: str
    pid: int
    #: ``time.time()`` when the supervisor started it (older port files belong to an
    #: earlier process that had the same pid).
    started_at: float


@dataclass(slots=True)
class Scraped:
    """The merged families of one scrape, and the workers that did not answer."""

    families: list[Metric] = field(default_factory=list)
    answered: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)


def read_port(directory: Path, target: Target) -> int | None:
    """The port ``target`` published, or ``None`` (not yet written, or a stale file)."""
    path = directory / str(target.pid)
    try:
        if path.stat().st_mtime < target.started_at - 1.0:
            return None  # written by an earlier process with this pid
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def fetch(port: int, timeout: float = SCRAPE_TIMEOUT) -> str:
    """The text of ``http://127.0.0.1:PORT/metrics`` (an `OSError` when it does not answer)."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
    return body.decode()


def _read(directory: Path, target: Target, timeout: float) -> list[Metric] | None:
    port = read_port(directory, target)
    if port is None:
        return None
    try:
        return list(text_string_to_metric_families(fetch(port, timeout)))
    except (OSError, ValueError):
        return None


def scrape(directory: Path, targets: list[Target], timeout: float = SCRAPE_TIMEOUT) -> Scraped:
    """Read every target's metrics in parallel and merge them (see the module docstring)."""
    out = Scraped()
    if not targets:
        return out
    with ThreadPoolExecutor(min(16, len(targets)), thread_name_prefix="conveyor-scrape") as ex:
        pages = list(ex.map(lambda t: _read(directory, t, timeout), targets))
    merged: dict[str, Metric] = {}
    for target, page in zip(targets, pages, strict=True):
        if page is None:
            out.failed[target.pool] = out.failed.get(target.pool, 0) + 1
            continue
        out.answered[target.pool] = out.answered.get(target.pool, 0) + 1
        _merge(merged, page, target)
    out.families = list(merged.values())
    return out


def _merge(merged: dict[str, Metric], page: Iterable[Metric], target: Target) -> None:
    families = list(page)
    worker = _worker_id(families) or f"pid-{target.pid}"
    extra = {"worker": worker, "pool": target.pool}
    for family in families:
        if family.name in BACKEND_FAMILIES:
            continue
        into = merged.get(family.name)
        if into is None:
            into = merged[family.name] = Metric(
                family.name, family.documentation, family.type, family.unit
            )
        for s in family.samples:
            into.samples.append(s._replace(labels={**s.labels, **extra}))


def _worker_id(families: list[Metric]) -> str | None:
    for family in families:
        if family.name == "conveyor_worker_info":
            for s in family.samples:
                return s.labels.get("worker") or None
    return None


def tidy(directory: Path, live: Iterable[int], now: float | None = None) -> None:
    """Remove port files of processes no longer supervised (once `STALE_AFTER` old)."""
    keep = {str(pid) for pid in live}
    now = time.time() if now is None else now
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            if entry.name in keep:
                continue
            with contextlib.suppress(OSError):
                if now - entry.stat().st_mtime > STALE_AFTER:
                    os.unlink(entry.path)
