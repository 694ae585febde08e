"""Claimed records that cannot be read, on Redis: each claimed job is decoded on its own,
and one that fails is dead-lettered by ``quarantine.lua`` (fenced by its lease) while the
rest of the batch runs. See `conveyor.backends.unreadable` for the rules every store
follows, and ``claim.lua`` for the index damage a claim repairs or skips."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from conveyor.backends.redis import codec
from conveyor.backends.redis.connection import RedisConnection
from conveyor.backends.unreadable import UnreadableRecord
from conveyor.job import JobRecord, State, WorkerInfo

log = logging.getLogger("conveyor.backend.redis")

#: What claim.lua reports for a field it found damaged while leasing.
_LUA_PROBLEMS = {
    "attempts": "it is not an integer Redis can count attempts with",
    "state": "it is missing or not a job state",
}


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A claimed job to quarantine: its id, lease token and what cannot be read."""

    job_id: str
    token: str
    problem: UnreadableRecord


@dataclass(slots=True)
class Claimed:
    """A claim reply decoded: the jobs to run, and how many entries it leased in all."""

    jobs: list[JobRecord]
    leased: int


def show(value: bytes | str) -> str:
    """Text from a script's reply for a log line; damaged bytes shown escaped."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return value


def log_notes(script: str, notes: Sequence[bytes | str]) -> None:
    """Log the damage a script repaired or skipped (its ``NOTES``), one error each."""
    for entry in notes:
        log.error("damaged Redis data (%s.lua): %s", script, show(entry))


def decode_claim(
    reply: list[Any], worker_id: str, token_base: str
) -> tuple[list[JobRecord], list[Unreadable]]:
    """claim.lua's reply as the jobs that decode and the ones to quarantine.

    The reply holds each record as it was before the claim; the claim's writes (the same
    for the whole call but the token, ``token_base`` then the job's place) are applied
    here to each record before it is decoded.
    """
    log_notes("claim", reply[0])
    jobs: list[JobRecord] = []
    bad: list[Unreadable] = []
    if len(reply) < 3:
        return jobs, bad
    now, expires = reply[1]
    wid = worker_id.encode()
    record, stored = codec.record, codec.stored
    for n, i in enumerate(range(2, len(reply), 3), start=1):
        key_id, problem, flat = reply[i], reply[i + 1], reply[i + 2]
        token = f"{token_base}.{n}"
        try:
            if problem:
                raise _lua_problem(key_id, problem, flat)
            # The claim's writes, as claim.lua made them (it checked `attempts`).
            f = stored(flat)
            old = f.get(b"attempts")
            f[b"attempts"] = b"1" if old is None else str(int(old) + 1).encode()
            f[b"state"] = b"running"
            f[b"lease_token"] = token.encode()
            f[b"lease_expires_at"] = expires
            f[b"worker_id"] = wid
            f[b"started_at"] = f[b"updated_at"] = now
            jobs.append(record(f, key_id))
        except Exception as exc:  # noqa: BLE001 - one record, whatever is wrong with it
            bad.append(_unreadable(key_id, token, exc))
    return jobs, bad


def _lua_problem(key_id: bytes, problem: bytes, flat: list[bytes]) -> UnreadableRecord:
    name, _, old = show(problem).partition("=")
    detail = _LUA_PROBLEMS.get(name, "damaged")
    raw = old if name == "state" else codec.stored(flat).get(name.encode())
    return UnreadableRecord(show(key_id), name, f"{detail}; stored value {raw!r}")


def _unreadable(key_id: bytes, token: str, exc: Exception) -> Unreadable:
    job_id = show(key_id)
    if not isinstance(exc, UnreadableRecord):
        exc = UnreadableRecord(job_id, "(record)", f"{type(exc).__name__}: {exc}")
    return Unreadable(job_id, token, exc)


def worker_infos(flat: list[bytes]) -> list[WorkerInfo]:
    """workers.lua's list: every readable entry; a damaged one is skipped with an error
    (it leaves the registry when its expiry passes, like any other)."""
    out: list[WorkerInfo] = []
    for worker_id, entry in zip(flat[::2], flat[1::2], strict=False):
        try:
            out.append(codec.worker_info(entry))
        except Exception as exc:  # noqa: BLE001 - one entry, whatever is wrong with it
            log.error(
                "skipped the unreadable worker registry entry %s (%s: %s)",
                show(worker_id),
                type(exc).__name__,
                exc,
            )
    return out


async def claimed(
    conn: RedisConnection, reply: list[Any], worker_id: str, token_base: str
) -> Claimed:
    """The jobs of a claim reply that can run; the others are quarantined first."""
    jobs, bad = decode_claim(reply, worker_id, token_base)
    if bad:
        await quarantine(conn, bad)
    return Claimed(jobs, (len(reply) - 2) // 3)


async def quarantine(conn: RedisConnection, bad: Sequence[Unreadable]) -> None:
    """Dead-letter unreadable claimed jobs; a failure here only logs, as their leases
    expire and the reaper returns them (and a later claim quarantines them)."""
    k = conn.keys
    args: list[Any] = []
    for item in bad:
        log.error("quarantined job %s: %s", item.job_id, item.problem)
        args += [item.job_id, item.token, str(item.problem)]
    try:
        reply = await conn.run(
            "quarantine", [k.leases, k.unique, k.counts, k.done(State.DEAD)], *args
        )
    except Exception:
        log.exception("quarantining %d unreadable job(s) failed", len(bad))
        return
    log_notes("quarantine", reply[0])
    for item, outcome in zip(bad, reply[1:], strict=True):
        if outcome == b"0":
            log.warning("job %s was not quarantined: its lease was lost", item.job_id)
