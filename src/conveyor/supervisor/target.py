"""What every `conveyor export` format shares: where the workers run, their command line, stop
timeouts, names, and the characters each process manager would read as its own syntax.

A value a manager would expand (``%`` for supervisord and systemd, ``$`` for systemd and
compose: a path, the app) is escaped so the worker receives it as written; a value no config
file can carry (a line break, a NUL) is refused with a `ConfigError` naming it, and so is a
queue or task name no job can have (``$``, ``%``, a space).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from conveyor.errors import ConfigError
from conveyor.supervisor.config import Pool
from conveyor.worker.state import EXIT_RECYCLED

#: Seconds past the worker's grace period before a process manager may SIGKILL it.
STOP_MARGIN = 15
#: Where the systemd units read ``CONVEYOR_URL`` (and any other setting) from.
ENV_FILE = "/etc/conveyor/conveyor.env"
#: The port the Kubernetes workers serve ``/metrics``, ``/livez`` and ``/readyz`` on.
METRICS_PORT = 9184
AUTOSCALERS = ("hpa", "keda", "none")

__all__ = [
    "AUTOSCALERS",
    "ENV_FILE",
    "EXIT_RECYCLED",
    "METRICS_PORT",
    "STOP_MARGIN",
    "Target",
    "check_routing",
    "check_value",
    "command",
    "percent",
    "stop_seconds",
    "unit_name",
]


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how the exported workers run."""

    app: str
    #: The command that runs Conveyor's CLI: ``[".../bin/conveyor"]`` or
    #: ``[".../bin/python", "-m", "conveyor"]``.
    program: tuple[str, ...] = ("conveyor",)
    workdir: str = "/srv/app"
    #: supervisord/systemd: the account the workers run as (``None``: the manager's own).
    user: str | None = None
    #: supervisord: the log directory (``None``: supervisord's own, ``childlogdir``).
    log_dir: str | None = None
    #: systemd: the environment file holding ``CONVEYOR_URL``.
    env_file: str = ENV_FILE
    image: str = "my-app:latest"
    #: Kubernetes: the Secret holding the backend URL under key ``url``.
    secret_name: str = "conveyor"  # noqa: S105 - a name, not a secret
    metrics_port: int = METRICS_PORT
    #: Kubernetes: ``hpa`` (CPU), ``keda`` (queue depth through Prometheus) or ``none``.
    autoscale: str = "hpa"
    #: Kubernetes with ``keda``: the Prometheus server KEDA queries.
    prometheus: str = "http://prometheus-operated.monitoring.svc:9090"


#: A queue or task name (letters, digits, ``_ . : -``), or a glob of them.
_ROUTE = re.compile(r"^[A-Za-z0-9_.:*?\[\]!-]+$")


def check_routing(pool: Pool) -> None:
    """Refuse a queue or task name no job can have (``$``, ``%``, spaces...): the worker
    would serve nothing, and a process manager might read it as its own syntax."""
    for key, names in (("queues", pool.queues), ("job_types", pool.job_types)):
        for name in names or ():
            if not _ROUTE.match(name):
                raise ConfigError(
                    f"pool {pool.name!r}: {key} has {name!r}, which no queue or task can be "
                    "named (letters, digits, '_', '.', ':', '-', and the globs * ? [...]): "
                    "fix it in the pool's settings"
                )


def command(pool: Pool, target: Target) -> list[str]:
    """The worker command of ``pool``."""
    check_routing(pool)
    args = [*target.program, "worker", "--app", target.app, *pool.worker_args()]
    for value in args:
        check_value(value, f"the worker command of pool {pool.name!r}")
    return args


def check_value(value: str, where: str) -> str:
    """``value`` if a config file can carry it, else a `ConfigError`."""
    bad = next((c for c in value if c in "\n\r\0"), None)
    if bad is not None:
        raise ConfigError(
            f"{where} has {value!r}, with a {bad!r} that no process manager's config can "
            "carry: remove it from the pool's settings"
        )
    return value


def stop_seconds(pool: Pool) -> int:
    """How long a process manager waits after SIGTERM before SIGKILL."""
    return int(pool.grace + 0.999) + STOP_MARGIN


def unit_name(pool: Pool) -> str:
    """``conveyor-<pool>``: the program, unit, service or Deployment name of ``pool``."""
    return f"conveyor-{pool.name.replace('_', '-')}"


def percent(text: str) -> str:
    """``%`` doubled: supervisord's and systemd's specifiers start with it."""
    return text.replace("%", "%%")
