"""What ``conveyor worker`` works out before it starts: its pool, its task names, its logs.

* ``--pool NAME`` outside ``conveyor run`` takes that pool's settings (``<POOL>_WORKER_*``,
  ``[pools.NAME]``, then ``WORKER_*``) as a supervised worker of the pool gets them, so
  ``MAIL_WORKER_QUEUES=mail conveyor worker --pool mail`` is one process of the mail pool
  (the seed's ``-worker=mail``). Flags still win.
* ``WORKER_JOB_TYPES`` / ``--job-types`` may name a task by its short name (``send_email``
  for ``app.mail.send_email``), as the seeds' job types do, when only one task has it.
* ``LOG_DEPRECATIONS_CHANNEL`` sends Python's deprecation warnings to a log channel, as
  Laravel's setting of that name does.
"""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConfigError

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.settings import Settings
    from conveyor.supervisor.config import Pool

#: The `Settings` fields a pool's keys give (``tries`` and ``timeout`` are mapped apart).
_POOL_FIELDS = {
    "concurrency": "worker_concurrency",
    "queues": "worker_queues",
    "priorities": "worker_priorities",
    "job_types": "worker_job_types",
    "max_jobs": "worker_max_jobs",
    "memory_limit": "worker_memory_limit",
    "max_time": "worker_max_time",
    "sleep": "worker_sleep",
    "grace_period": "worker_grace_period",
    "queues_ordered": "worker_queues_ordered",
    "backoff": "worker_backoff",
}


def pool_settings(name: str) -> dict[str, Any]:
    """The settings a worker of pool ``name`` runs with, by `Settings` field (only those
    the pool's configuration sets); a `ConfigError` naming a wrong variable or file key."""
    from conveyor.supervisor.config import load_pools

    return settings_of(load_pools().for_worker(name))


def settings_of(pool: Pool) -> dict[str, Any]:
    """``pool``'s values as `Settings` fields: its caps and its jobs' defaults, as
    `Pool.worker_env` gives a supervised worker (``tries`` 3 is ``MAX_RETRIES`` 2)."""
    out = {
        field: getattr(pool, key)
        for key, field in _POOL_FIELDS.items()
        if getattr(pool, key) is not None
    }
    if pool.timeout is not None:
        out["worker_timeout"] = out["job_timeout"] = pool.timeout
    if pool.tries is not None:
        out["worker_tries"] = pool.tries
        out["max_retries"] = pool.tries - 1
    return out


def resolve_job_types(app: Conveyor, where: str) -> tuple[str, ...] | None:
    """``WORKER_JOB_TYPES`` with short names replaced by the one task each names.

    A name that is a task's full name is kept; one that is the last part of exactly one
    task's name (``send_email``) becomes that name; one that is the last part of several is
    a `ConfigError` naming the setting (``where``) and the candidates. A name that matches
    nothing is kept (`unmatched_routing` warns about it).
    """
    wanted = app.settings.worker_job_types
    if not wanted:
        return wanted
    out: list[str] = []
    for name in wanted:
        if name in app.tasks:
            out.append(name)
            continue
        short = [t for t in sorted(app.tasks) if t.rsplit(".", 1)[-1] == name]
        if len(short) > 1:
            raise ConfigError(
                f"{where}: {name!r} is the short name of several tasks ({', '.join(short)}); "
                "give the full name of the one this worker runs"
            )
        out.append(short[0] if short else name)
    return tuple(dict.fromkeys(out))


#: The warnings Laravel's deprecations channel would receive.
DEPRECATIONS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)
_logger = logging.getLogger("conveyor.deprecations")


def route_deprecations(settings: Settings) -> bool:
    """Send deprecation warnings to ``LOG_DEPRECATIONS_CHANNEL`` (when set), once per
    place in the code; other warnings are shown as before. True when routing is on."""
    channel = settings.log_deprecations_channel
    if channel is None:
        return False
    from conveyor.logs.channels import Channels

    # Its own handlers, from these settings (the app may have set up logging its own way).
    handlers = Channels(settings).handlers(channel)
    for old in _logger.handlers:
        old.close()
    _logger.handlers[:] = handlers
    _logger.propagate = False
    _logger.setLevel(logging.WARNING)
    for category in DEPRECATIONS:
        warnings.filterwarnings("default", category=category)
    shown = warnings.showwarning
    if getattr(shown, "_conveyor_deprecations", False):
        return True  # already routed in this process

    def showwarning(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        if issubclass(category, DEPRECATIONS):
            _logger.warning(
                "%s: %s (%s:%d)",
                category.__name__,
                message,
                filename,
                lineno,
                extra={"deprecation": category.__name__},
            )
            return
        shown(message, category, filename, lineno, file, line)

    showwarning._conveyor_deprecations = True  # type: ignore[attr-defined]
    warnings.showwarning = showwarning
    return True
