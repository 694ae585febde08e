"""The worker: claims jobs its routing matches and runs up to ``concurrency`` at once.

One asyncio loop per process. Async tasks run on the loop, sync tasks in a thread pool.
Around that loop: a heartbeat thread that keeps leases alive (`heartbeat.py`), a reaper
that recovers jobs from dead workers (`reaper.py`), and signal handling for graceful
shutdown (`shutdown.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import psutil

from conveyor.errors import ConfigError, SchemaVersionError
from conveyor.job import JobRecord, Lease, Priority, Routing, WorkerInfo
from conveyor.limits import Pacer, Wait
from conveyor.worker.admission import admit
from conveyor.worker.backoff import Backoff
from conveyor.worker.executor import Outcome, dead, describe, execute
from conveyor.worker.fetcher import Events, Fetcher, Slots
from conveyor.worker.heartbeat import Heartbeat
from conveyor.worker.reaper import Reaper
from conveyor.worker.reporting import Reporter
from conveyor.worker.shutdown import SignalHandlers, wait_all_or
from conveyor.worker.state import (
    EXIT_FORCED,
    EXIT_OK,
    EXIT_STUCK_THREAD,
    JobObserver,
    JobThreads,
    Running,
    WorkerStats,
)
from conveyor.worker.watchdog import LoopWatchdog, watch

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.backends.base import Backend

log = logging.getLogger("conveyor.worker")


class Worker:
    """Runs jobs for one app. Options default to the app's settings (``WORKER_*``)."""

    def __init__(
        self,
        app: Conveyor,
        *,
        concurrency: int | None = None,
        queues: tuple[str, ...] | None = None,
        priorities: tuple[Priority, ...] | None = None,
        job_types: tuple[str, ...] | None = None,
        burst: bool = False,
        max_jobs: int | None = None,
        memory_limit: int | None = None,
        max_time: float | None = None,
        timeout_cap: float | None = None,
        tries_cap: int | None = None,
        grace_period: float | None = None,
        lease_seconds: float | None = None,
        heartbeat_interval: float | None = None,
        reaper: bool | None = None,
        reaper_interval: float | None = None,
        poll_interval: float | None = None,
        handle_signals: bool = False,
        pool: str | None = None,
    ) -> None:
        s = app.settings
        self.app = app
        self.concurrency = concurrency or s.worker_concurrency
        self.routing = Routing(
            queues=queues or s.worker_queues,
            priorities=priorities or s.worker_priorities,
            tasks=job_types or s.worker_job_types,
        )
        self.burst = burst
        self.max_jobs = max_jobs or s.worker_max_jobs
        self.memory_limit = memory_limit or s.worker_memory_limit
        self.max_time = max_time or s.worker_max_time
        self.timeout_cap = timeout_cap or s.worker_timeout
        self.tries_cap = tries_cap or s.worker_tries
        self.grace_period = s.worker_grace_period if grace_period is None else grace_period
        self.lease_seconds = lease_seconds or s.lease_seconds
        self.heartbeat_interval = heartbeat_interval or self.lease_seconds / 3
        self.reaper_enabled = s.enable_reaper if reaper is None else reaper
        self.reaper_interval = reaper_interval or s.reaper_interval
        self.poll_interval = poll_interval or s.worker_sleep
        self.handle_signals = handle_signals
        self.pool = pool
        self.id = f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"
        self.counts = WorkerStats()
        self.stop_reason: str | None = None
        self.stuck_threads = 0
        #: Per-job hooks, e.g. the Prometheus duration histogram (`conveyor.metrics`).
        self.job_observers: list[JobObserver] = []
        self._running: dict[str, Running] = {}
        self._started_mono = time.monotonic()
        self._started_at = app.clock.now()
        self._threads = ThreadPoolExecutor(self.concurrency, thread_name_prefix="conveyor-job")
        self._events: Events | None = None
        self._watchdog: LoopWatchdog | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._backend: Backend | None = None
        self._reporter: Reporter
        self._heartbeat: Heartbeat | None = None
        self._process = psutil.Process()
        self._pacer = Pacer()
        self._closing = False

    # -- public --------------------------------------------------------------------------
    def stop(self, reason: str = "stop requested") -> None:
        """Stop fetching, let running jobs finish (up to the grace period), then return."""
        if self.stop_reason is None:
            self.stop_reason = reason
            log.info("worker %s stopping: %s", self.id, reason)
        if self._events is not None:
            self._events.wake.set()
            self._events.stopping.set()

    def force_stop(self) -> None:
        """Stop now: running jobs are released back to ready without waiting."""
        self.stop("forced stop")
        if self._events is not None:
            self._events.force.set()

    def stats(self) -> dict[str, Any]:
        """This worker's counters, uptime, memory and utilisation."""
        uptime = time.monotonic() - self._started_mono
        # tuple() copies in one step: the heartbeat thread calls this while the loop runs.
        running = tuple(self._running.values())
        busy = self.counts.busy_seconds + sum(time.monotonic() - r.started for r in running)
        c = self.counts
        return {
            "id": self.id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "pool": self.pool,
            "queues": list(self.routing.queues or ["*"]),
            "concurrency": self.concurrency,
            "running": len(running),
            "processed": c.processed,
            "succeeded": c.succeeded,
            "failed": c.retried + c.dead,
            "retried": c.retried,
            "dead": c.dead,
            "fenced": c.fenced,
            "lost": c.lost,
            "released": c.released,
            "abandoned": c.abandoned,
            "loop_stalls": 0 if self._watchdog is None else self._watchdog.stalls,
            "uptime": round(uptime, 3),
            "rss_mb": round(self._process.memory_info().rss / 2**20, 1),
            "utilisation": round(min(1.0, busy / max(uptime * self.concurrency, 1e-9)), 4),
            # per task, queue and outcome, from the metrics middleware (`app.job_metrics`)
            "tasks": self.app.job_metrics.snapshot(),
        }

    def heartbeat_age(self) -> float | None:
        """Seconds since the registry last heard from this worker (``None``: never)."""
        beat = self._heartbeat.last_beat if self._heartbeat is not None else None
        return None if beat is None else time.monotonic() - beat

    def heartbeat_ttl(self) -> float:
        """How old a heartbeat may get before the registry forgets this worker."""
        return max(3 * self.heartbeat_interval, 5.0)

    def info(self) -> WorkerInfo:
        """The record this worker keeps in the backend's registry."""
        return WorkerInfo(
            id=self.id,
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=self._started_at,
            pool=self.pool,
            queues=self.routing.queues,
            stats=self.stats(),
        )

    async def run(self) -> int:
        """Work until stopped (signal, limit, burst done); return the process exit code."""
        self._loop = asyncio.get_running_loop()
        self._events = events = Events()
        if self.stop_reason is not None:  # stopped before it ran
            events.stopping.set()
        signals = SignalHandlers(self) if self.handle_signals else None
        # The watchdog reads the stop signals' times from the trap that receives them.
        self._watchdog = watch(self, [] if signals is None else signals.trap.times)
        try:
            backend = await self._connect()
            if backend is None:
                return EXIT_OK
            self._backend = backend
            self._reporter = Reporter(backend, self.lease_seconds, self.counts)
            self._heartbeat = Heartbeat(
                backend.clone(),
                lease_seconds=self.lease_seconds,
                interval=self.heartbeat_interval,
                on_lost=self._on_lost_threadsafe,
                info=self.info,
            )
            self._heartbeat.start()
            log.info(
                "worker %s started: concurrency=%d queues=%s priorities=%s tasks=%s",
                self.id,
                self.concurrency,
                _show(self.routing.queues),
                _show(self.routing.priorities and [p.label for p in self.routing.priorities]),
                _show(self.routing.tasks),
            )
            housekeeping = asyncio.create_task(self._housekeeping(backend))
            try:
                await self._fetcher(backend, events).run()
                await self._drain()
            finally:
                # The flag ends the loop even if a library swallows the cancellation (seen
                # with redis-py under Python 3.11), and the wait is bounded either way.
                self._closing = True
                housekeeping.cancel()
                await asyncio.wait({housekeeping}, timeout=5.0)
                await self._finish(backend)
        finally:
            self._watchdog.stop()
            if signals is not None:
                signals.remove()
            self._threads.shutdown(wait=False, cancel_futures=True)
        if events.force.is_set():
            return EXIT_FORCED
        return EXIT_STUCK_THREAD if self.stuck_threads else EXIT_OK

    # -- fetching ------------------------------------------------------------------------
    async def _connect(self) -> Backend | None:
        backoff = Backoff("connecting to the backend", log, first=0.2)
        while self.stop_reason is None:
            try:
                backend = await self.app.open()
            except (ConfigError, SchemaVersionError):
                raise  # waiting cannot fix these: an operator must (e.g. `conveyor migrate`)
            except Exception as exc:  # noqa: BLE001 - keep trying until stopped
                assert self._events is not None
                await self._events.sleep(backoff.failed(exc))
                continue
            backoff.succeeded()
            return backend
        return None

    def _free_slots(self) -> int:
        free = self.concurrency - len(self._running)
        if self.max_jobs is not None:
            free = min(free, self.max_jobs - self.counts.processed - len(self._running))
        return free

    def _fetcher(self, backend: Backend, events: Events) -> Fetcher:
        slots = Slots(
            free=self._free_slots,
            start=self._start,
            busy=lambda: bool(self._running),
            stop=self.stop,
            stopped=lambda: self.stop_reason is not None,
        )
        return Fetcher(
            backend,
            slots,
            events,
            worker_id=self.id,
            routing=self.routing,
            lease_seconds=self.lease_seconds,
            poll_interval=self.poll_interval,
            burst=self.burst,
            clock=self.app.clock,
            pickups=self.counts.pickup_seconds.append,
        )

    # -- running -------------------------------------------------------------------------
    def _start(self, job: JobRecord) -> None:
        assert job.lease_token is not None and self._heartbeat is not None
        # A pool's caps (WORKER_TIMEOUT, WORKER_TRIES) bound every job it runs, whatever
        # the enqueuing process stored on the job.
        if self.timeout_cap is not None:
            job.timeout = min(job.timeout, self.timeout_cap)
        if self.tries_cap is not None:
            job.max_retries = min(job.max_retries, self.tries_cap - 1)
        lease = Lease(job.id, job.lease_token)
        self._heartbeat.hold(lease)
        task = asyncio.create_task(self._run_job(job, lease), name=f"job-{job.id}")
        self._running[job.id] = Running(job, lease, task, time.monotonic())

    async def _run_job(self, job: JobRecord, lease: Lease) -> None:
        run = self._running[job.id]
        try:
            try:
                result = await self._admitted_run(job, run)
            except asyncio.CancelledError:
                await self._cancelled(job, lease, run)
                return
            except BaseException as exc:
                # `execute` turns everything a task raises into an Outcome, so this is a
                # fault in the worker's own path (admission, a limit's key function...).
                # The job must still end, or its slot and lease stay held for good.
                log.exception("job %s (%s): the worker failed running it", job.id, job.task)
                result = dead(f"worker_error: {describe(exc)}", exc)
            # The job has run (no await since): a lost-lease or shutdown cancel from now on
            # would only cut its report short, so `_cancel` leaves it alone.
            run.executing = False
            if isinstance(result, Wait):
                await self._defer(job, lease, result.delay, result.headers, result.reason)
            elif result.defer is not None:  # the task raised RateLimited
                await self._defer(job, lease, result.defer, result.headers, "retry_after")
            else:
                await self._report(job, lease, result)
        finally:
            if job.id in self._running:  # a report that raised: free the slot regardless
                self._done(job.id, "unreported")
            if run.slot is not None and self._backend is not None:
                with contextlib.suppress(Exception):  # an unreleased slot expires by itself
                    await self._backend.slot_release(run.slot, job.id)

    async def _admitted_run(self, job: JobRecord, run: Running) -> Outcome | Wait:
        """Pass the task's limits (if any), then run the job."""
        task = self.app.tasks.get(job.task)
        if task is not None and task.limits.gated:
            assert self._backend is not None and self._heartbeat is not None
            verdict = await admit(self._backend, job, task, self.lease_seconds, self._pacer)
            if isinstance(verdict, (Wait, Outcome)):
                return verdict
            if verdict.slot is not None:
                run.slot = verdict.slot
                limit = task.limits.max_concurrency or 1
                self._heartbeat.hold_slot(job.id, verdict.slot, limit)
        if task is None or task.is_async:  # no thread to keep track of
            return await execute(self.app, job, self.id, self._threads)
        run.threads = JobThreads(self._threads)
        return await execute(self.app, job, self.id, run.threads)

    async def _cancelled(self, job: JobRecord, lease: Lease, run: Running) -> None:
        end = "unreported"
        if run.cancel_reason == "lost":
            self.counts.lost += 1
            end = "lost"
            log.warning("job %s (%s) lost its lease and was cancelled", job.id, job.task)
        elif run.threads is not None and run.threads.busy:
            # A plain def task's thread cannot be stopped: releasing its job would let
            # another worker run it while this thread still does. Keep the lease out of
            # the store's hands instead; it expires once this process has exited, which
            # fences this run, and then the job is recovered.
            self.counts.abandoned += 1
            end = "abandoned"
            log.warning(
                "job %s (%s) still runs in its thread at the end of the grace period: it is "
                "not released (it would run twice) but left to its lease, which expires "
                "after this process exits",
                job.id,
                job.task,
            )
        elif await self._reporter.release(lease):
            self.counts.released += 1
            end = "released"
        self._done(job.id, end)

    async def _defer(
        self,
        job: JobRecord,
        lease: Lease,
        delay: float,
        headers: dict[str, Any] | None,
        reason: str,
    ) -> None:
        """Put the job back to wait ``delay`` seconds in storage, its attempt unused."""
        if await self._reporter.defer(lease, delay, headers):
            self.counts.waits[(job.task, reason)] += 1
            log.debug("job %s (%s) waits %.3fs: %s", job.id, job.task, delay, reason)
        self._done(job.id, "deferred")

    async def _report(self, job: JobRecord, lease: Lease, outcome: Outcome) -> None:
        await self._reporter.settle(lease, outcome)
        c = self.counts
        c.processed += 1
        end = "retried"
        if outcome.failure is None:
            c.succeeded += 1
            end = "succeeded"
        elif outcome.failure.retry_in is None:
            c.dead += 1
            end = "dead"
            log.error("job %s (%s) dead: %s", job.id, job.task, outcome.failure.error)
        else:
            c.retried += 1
            log.warning(
                "job %s (%s) failed, will retry: %s", job.id, job.task, outcome.failure.error
            )
        if outcome.timed_out_thread:
            self.stuck_threads += 1
            self.stop("a sync task overran its timeout; restarting to free its stuck thread")
        self._done(job.id, end)
        if self.max_jobs is not None and c.processed >= self.max_jobs:
            self.stop(f"max jobs reached ({self.max_jobs})")

    def _done(self, job_id: str, outcome: str) -> None:
        running = self._running.pop(job_id)
        seconds = time.monotonic() - running.started
        self.counts.busy_seconds += seconds
        for observe in self.job_observers:
            try:
                observe(running.job, outcome, seconds)
            except Exception:
                log.exception("job observer %r failed", observe)
        if self._heartbeat is not None:
            self._heartbeat.drop(job_id)
        if self._events is not None:
            self._events.wake.set()

    def _on_lost_threadsafe(self, job_ids: list[str]) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._cancel, job_ids, "lost")

    def _cancel(self, job_ids: list[str], reason: str) -> None:
        for job_id in job_ids:
            running = self._running.get(job_id)
            if running is not None and running.executing and not running.task.done():
                running.cancel_reason = reason
                running.task.cancel()

    # -- stopping ------------------------------------------------------------------------
    async def _drain(self) -> None:
        assert self._events is not None
        force_event = self._events.force
        if self._running and not force_event.is_set():
            log.info(
                "waiting up to %gs for %d running job(s)", self.grace_period, len(self._running)
            )
            tasks = {r.task for r in self._running.values()}
            force = asyncio.ensure_future(force_event.wait())
            await wait_all_or(tasks, force, self.grace_period)
            force.cancel()
        if self._running:
            log.warning("releasing %d unfinished job(s) back to ready", len(self._running))
            self._cancel(list(self._running), "shutdown")
            await asyncio.wait({r.task for r in self._running.values()}, timeout=10)

    async def _housekeeping(self, backend: Backend) -> None:
        s = self.app.settings
        reaper = Reaper(
            backend,
            self.app.clock,
            max_recoveries=s.max_recoveries,
            result_ttl=s.result_ttl,
            dead_ttl=s.dead_ttl,
        )
        next_reap = 0.0
        while not self._closing:
            now = time.monotonic()
            if self.reaper_enabled and now >= next_reap:
                next_reap = now + self.reaper_interval
                await reaper.tick()
            if self.max_time is not None and now - self._started_mono >= self.max_time:
                self.stop(f"max time reached ({self.max_time:g}s)")
            if self.memory_limit is not None:
                rss = self._process.memory_info().rss / 2**20
                if rss > self.memory_limit:
                    self.stop(f"memory limit reached ({rss:.0f} MB > {self.memory_limit} MB)")
            await asyncio.sleep(min(1.0, self.reaper_interval))

    async def _finish(self, backend: Backend) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
            await asyncio.to_thread(self._heartbeat.join, 5.0)
        try:
            await backend.unregister_worker(self.id)
        except Exception:
            log.debug("unregister failed", exc_info=True)
        log.info(
            "worker %s stopped: %d processed, %d succeeded, %d retried, %d dead",
            self.id,
            self.counts.processed,
            self.counts.succeeded,
            self.counts.retried,
            self.counts.dead,
        )


def _show(values: Any) -> str:
    return "all" if not values else ",".join(str(v) for v in values)
