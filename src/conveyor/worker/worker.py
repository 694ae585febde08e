"""The worker: claims jobs its routing matches and runs up to ``concurrency`` at once.

One asyncio loop per process. Async tasks run on the loop, sync tasks in a thread pool.
Around that loop: the store check at start (`needs.py`), the fetcher that claims
(`fetcher.py`), admission to task limits (`admission.py`), the executor (`executor.py`),
settling each job's `Outcome` with the store (`reporting.py`), the progress jobs report
(`progress.py`), a heartbeat thread that keeps leases alive (`heartbeat.py`), housekeeping
that recovers jobs from dead workers and recycles this one (`housekeeping.py`), and signal
handling for graceful shutdown (`shutdown.py`).
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

from conveyor.job import JobRecord, Lease, Priority, Routing, WorkerInfo
from conveyor.modes import all_async, default_concurrency
from conveyor.worker.admission import Pacer, Pass, admit
from conveyor.worker.backoff import connect
from conveyor.worker.executor import dead, describe, prepare, run_prepared
from conveyor.worker.fetcher import Events, Fetcher, Slots
from conveyor.worker.heartbeat import Heartbeat
from conveyor.worker.housekeeping import housekeeping
from conveyor.worker.needs import StoreUse, check_store
from conveyor.worker.outcome import Failed, Outcome, Ran, Succeeded
from conveyor.worker.progress import ProgressWriter
from conveyor.worker.reporting import Reporter
from conveyor.worker.shutdown import SignalHandlers, drain
from conveyor.worker.state import (
    EXIT_FORCED,
    EXIT_OK,
    EXIT_STUCK_THREAD,
    JobObserver,
    JobThreads,
    Running,
    WorkerCounts,
)
from conveyor.worker.stats import WorkerStats
from conveyor.worker.watchdog import LoopWatchdog, watch

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.backends.base import Backend

log = logging.getLogger("conveyor.worker")


class Worker:
    """Runs jobs for one app. Options default to the app's settings (``WORKER_*``).

    An app whose settings skipped a value (`Settings.problems`) is refused with a
    `ConfigError` naming it.
    """

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
        app.settings.raise_problems()  # a skipped setting: refuse to start, naming it
        s = app.settings
        self.app = app
        self.routing = Routing(
            queues=queues or s.worker_queues,
            priorities=priorities or s.worker_priorities,
            tasks=job_types or s.worker_job_types,
        )
        self.concurrency = concurrency or default_concurrency(
            s, all_async(app.tasks.values(), self.routing.tasks)
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
        self.counts = WorkerCounts()
        self.stop_reason: str | None = None
        self.stuck_threads = 0
        #: Per-job hooks, e.g. the Prometheus duration histogram (`conveyor.metrics`).
        self.job_observers: list[JobObserver] = []
        self._running: dict[str, Running] = {}
        #: Jobs in `_running` that have run and are being reported to the store.
        self._reporting = 0
        #: ``time.monotonic()`` when the worker was made (uptime, ``max_time``).
        self.started_monotonic = time.monotonic()
        self._started_at = app.clock.now()
        self._threads = ThreadPoolExecutor(self.concurrency, thread_name_prefix="conveyor-job")
        self._events: Events | None = None
        self._watchdog: LoopWatchdog | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._backend: Backend | None = None
        self._reporter: Reporter
        self._progress: ProgressWriter | None = None
        self._heartbeat: Heartbeat | None = None
        self._process = psutil.Process()
        self._pacer = Pacer()
        #: Set when the worker is finishing: ends the housekeeping loop.
        self.closing = False

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

    def stats(self) -> WorkerStats:
        """This worker's counters, uptime, memory and utilisation, read once."""
        return WorkerStats.read(self)

    def running_jobs(self) -> tuple[Running, ...]:
        """The jobs running now (one copy: the heartbeat's thread reads it too)."""
        return tuple(self._running.values())

    def loop_stalls(self) -> int:
        """Times the loop watchdog found the event loop blocked."""
        return 0 if self._watchdog is None else self._watchdog.stalls

    def rss_bytes(self) -> int:
        """This process's resident memory."""
        return int(self._process.memory_info().rss)

    def heartbeat_age(self) -> float | None:
        """Seconds since the heartbeat last reached the store (``None``: never)."""
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
            stats=self.stats().as_dict(),
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
            backend = await connect(self.app, events)
            if backend is None:
                return EXIT_OK
            self._backend = backend
            store = check_store(backend, self.app.tasks.values())
            self._reporter = Reporter(backend, self.lease_seconds, self.counts)
            self._progress = ProgressWriter(backend.progress if store.progress else None)
            self._heartbeat = Heartbeat(
                backend.clone(),
                lease_seconds=self.lease_seconds,
                interval=self.heartbeat_interval,
                on_lost=self._on_lost_threadsafe,
                info=self.info if store.telemetry else None,
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
            chores = asyncio.create_task(housekeeping(self, backend))
            try:
                await self._fetcher(backend, events).run()
                await drain(self._running, events.force, self.grace_period, self._cancel)
            finally:
                # The flag ends the loop even if a library swallows the cancellation (seen
                # with redis-py under Python 3.11), and the wait is bounded either way.
                self.closing = True
                chores.cancel()
                await asyncio.wait({chores}, timeout=5.0)
                await self._finish(backend, store)
        finally:
            self._watchdog.stop()
            if signals is not None:
                signals.remove()
            self._threads.shutdown(wait=False, cancel_futures=True)
        if events.force.is_set():
            return EXIT_FORCED
        return EXIT_STUCK_THREAD if self.stuck_threads else EXIT_OK

    # -- fetching ------------------------------------------------------------------------
    def _free_slots(self) -> int:
        # A job that has run and is only being reported holds no slot (see `_run_job`);
        # a max-jobs limit counts it until its report is done.
        free = self.concurrency - len(self._running) + self._reporting
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
            ordered=self.app.settings.worker_queues_ordered,
            error_backoff=(
                self.app.settings.worker_error_backoff,
                self.app.settings.worker_error_backoff_max,
            ),
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
        reports = None if self._progress is None else self._progress.for_job(lease)
        self._running[job.id] = Running(job, lease, task, time.monotonic(), reports=reports)

    async def _run_job(self, job: JobRecord, lease: Lease) -> None:
        run = self._running[job.id]
        try:
            outcome: Outcome
            try:
                outcome = await self._admitted_run(job, run)
            except asyncio.CancelledError:
                outcome = run.cancelled()
            except BaseException as exc:
                # `run_prepared` turns everything a task raises into an outcome, so this is
                # a fault in the worker's own path (admission, a limit's key function...).
                # The job must still end, or its slot and lease stay held for good.
                log.exception("job %s (%s): the worker failed running it", job.id, job.task)
                outcome = dead(f"worker_error: {describe(exc)}", exc)
            # The job has run (no await since): a lost-lease or shutdown cancel from now on
            # would only cut its report short, so `_cancel` leaves it alone.
            run.executing = False
            # Its slot is free from here: the fetcher claims the next job while this
            # one's report is on its way, rather than one round trip after it.
            self._reporting += 1
            if self._events is not None:
                self._events.wake.set()
            reports = run.reports
            if reports is not None and reports.unsent and isinstance(outcome, Succeeded | Failed):
                await reports.flush()  # the final report, then the end
            end = await self._reporter.settle(job, lease, outcome)
            self._done(job.id, end)
            if isinstance(outcome, Failed) and outcome.timed_out_thread:
                self.stuck_threads += 1
                self.stop("a sync task overran its timeout; restarting to free its stuck thread")
            if self.max_jobs is not None and self.counts.processed >= self.max_jobs:
                self.stop(f"max jobs reached ({self.max_jobs})")
        finally:
            if run.reports is not None:
                run.reports.close()
            if job.id in self._running:  # a report that raised: free the slot regardless
                self._done(job.id, "unreported")
            if run.slot is not None and self._backend is not None:
                with contextlib.suppress(Exception):  # an unreleased slot expires by itself
                    await self._backend.limits.slot_release(run.slot, job.id)

    async def _admitted_run(self, job: JobRecord, run: Running) -> Ran:
        """Prepare the job, pass its task's limits (if any), then run it."""
        prepared = prepare(self.app, job)
        if isinstance(prepared, Failed):
            return prepared
        limits = prepared.task.limits
        if limits.gated:
            assert self._backend is not None and self._heartbeat is not None
            verdict = await admit(
                self._backend.limits, job, prepared, self.lease_seconds, self._pacer
            )
            if not isinstance(verdict, Pass):
                return verdict
            if verdict.slot is not None:
                run.slot = verdict.slot
                self._heartbeat.hold_slot(job.id, verdict.slot, limits.max_concurrency or 1)
        sink = None if run.reports is None else run.reports.report
        if prepared.task.is_async:  # no thread to keep track of
            return await run_prepared(self.app, job, prepared, self.id, self._threads, sink)
        run.threads = JobThreads(self._threads)
        return await run_prepared(self.app, job, prepared, self.id, run.threads, sink)

    def _done(self, job_id: str, outcome: str) -> None:
        running = self._running.pop(job_id)
        if not running.executing:
            self._reporting -= 1
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
    async def _finish(self, backend: Backend, store: StoreUse) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
            await asyncio.to_thread(self._heartbeat.join, 5.0)
        if store.telemetry:
            try:
                await backend.telemetry.unregister_worker(self.id)
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
