"""`conveyor export`: the configured pools as configs for supervisord, systemd, docker-compose
and Kubernetes (`conveyor.supervisor.kubernetes`).

Each exporter returns ``{file name: text}``. Every pool becomes one program / template unit /
service / Deployment running ``processes`` copies of ``conveyor worker`` with the pool's
flags. Stop timeouts are the pool's grace period plus `STOP_MARGIN`, so a worker always gets
to finish (or release) its running jobs before anything kills it. The backend URL is never
written into a file, and a worker never starts without one: supervisord refuses a config whose
``CONVEYOR_URL`` is missing from its environment, the systemd units read it from an
environment file (a placeholder makes the worker exit 2 naming that file when the file lacks
it), compose and Kubernetes refuse to start the container.

A worker that recycles itself exits with `EXIT_RECYCLED` (0), which every manager here
restarts at once and never counts as a failure.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from typing import Any

from conveyor.supervisor.config import Pool
from conveyor.supervisor.emit import dump_all
from conveyor.supervisor.kubernetes import kubernetes
from conveyor.supervisor.target import (
    EXIT_RECYCLED,
    STOP_MARGIN,
    Target,
    command,
    percent,
    stop_seconds,
    unit_name,
)

__all__ = ["EXPORTERS", "KINDS", "STOP_MARGIN", "Target", "command", "stop_seconds"]

KINDS = ("supervisord", "systemd", "compose", "kubernetes")


# -- supervisord ------------------------------------------------------------------------------
def supervisord(pools: list[Pool], target: Target) -> dict[str, str]:
    """One ``[program:]`` per pool with ``numprocs``, in a ``[group:conveyor]``."""
    parts = [
        "; Conveyor worker pools for supervisord (written by `conveyor export supervisord`).\n"
        "; CONVEYOR_URL comes from supervisord's own environment: without it supervisord\n"
        "; refuses this file (ENV_CONVEYOR_URL cannot be expanded) instead of starting\n"
        "; workers on a store nobody uses.\n"
        f"[group:conveyor]\nprograms={','.join(unit_name(p) for p in pools)}\n"
    ]
    for pool in pools:
        env = ",".join(
            ['CONVEYOR_URL="%(ENV_CONVEYOR_URL)s"']
            + [f'{k}="{percent(v)}"' for k, v in pool.worker_env().items()]
        )
        log = (
            "AUTO"  # supervisord's childlogdir, which supervisord itself creates
            if target.log_dir is None
            else percent(f"{target.log_dir.rstrip('/')}/")
            + "%(program_name)s_%(process_num)02d.log"
        )
        user = "" if target.user is None else f"user={target.user}\n"
        parts.append(
            f"[program:{unit_name(pool)}]\n"
            f"command={percent(shlex.join(command(pool, target)))}\n"
            "process_name=%(program_name)s_%(process_num)02d\n"
            f"numprocs={pool.processes}\n"
            f"directory={percent(target.workdir)}\n"
            f"{user}"
            f"environment={env}\n"
            "autostart=true\nautorestart=true\n"
            f"; Exit {EXIT_RECYCLED}: the worker recycled itself (max jobs, memory, max time).\n"
            f"exitcodes={EXIT_RECYCLED}\n"
            "; A worker that recycles within a second is still a good start: never FATAL.\n"
            "startsecs=0\nstartretries=10\n"
            f"stopsignal=TERM\nstopwaitsecs={stop_seconds(pool)}\n"
            "stopasgroup=true\nkillasgroup=true\n"
            "redirect_stderr=true\n"
            f"stdout_logfile={log}\n"
        )
    return {"conveyor.conf": "\n".join(parts)}


# -- systemd ----------------------------------------------------------------------------------
_SYSTEMD_PLAIN = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


def _systemd_word(word: str) -> str:
    """One ExecStart= argument: quoted when needed, ``$`` and ``%`` escaped."""
    if not _SYSTEMD_PLAIN.match(word):
        word = '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return percent(word).replace("$", "$$")


def enable_command(pools: list[Pool]) -> str:
    """The ``systemctl`` line that enables and starts the target and every instance."""
    instances = " ".join(
        f"{unit_name(p)}@{{1..{p.processes}}}.service"
        if p.processes > 1
        else f"{unit_name(p)}@1.service"
        for p in pools
    )
    return f"systemctl enable --now conveyor.target {instances}"


def systemd(pools: list[Pool], target: Target) -> dict[str, str]:
    """A template unit ``conveyor-<pool>@.service`` per pool and a ``conveyor.target``."""
    files: dict[str, str] = {}
    wants = " ".join(
        f"{unit_name(p)}@{i}.service" for p in pools for i in range(1, p.processes + 1)
    )
    files["conveyor.target"] = (
        "# Conveyor worker pools (written by `conveyor export systemd`).\n"
        f"# Enable: {enable_command(pools)}\n"
        "[Unit]\nDescription=Conveyor workers\n"
        f"Wants={wants}\n\n[Install]\nWantedBy=multi-user.target\n"
    )
    missing = f"missing: put CONVEYOR_URL=... in {target.env_file}"
    for pool in pools:
        env = " ".join(f'"{k}={percent(v)}"' for k, v in pool.worker_env().items())
        user = "" if target.user is None else f"User={target.user}\n"
        files[f"{unit_name(pool)}@.service"] = (
            f"# Pool {pool.name}: run {pool.processes} instance(s), "
            f"{unit_name(pool)}@1 ... @{pool.processes}.\n"
            f"[Unit]\nDescription=Conveyor worker, pool {pool.name} (instance %i)\n"
            "After=network-online.target\nWants=network-online.target\n"
            "PartOf=conveyor.target\n"
            "# Never give up on a worker: a crash loop retries every RestartSec.\n"
            "StartLimitIntervalSec=0\n\n"
            "[Service]\nType=simple\n"
            f"{user}"
            f"WorkingDirectory={percent(target.workdir)}\n"
            "# CONVEYOR_URL (with its password) goes in the environment file, root-only\n"
            "# (chmod 600); it overrides this placeholder, which makes the worker exit 2.\n"
            f'Environment="CONVEYOR_URL={percent(missing)}"\n'
            f"EnvironmentFile={percent(target.env_file)}\n"
            f"Environment={env}\n"
            f"ExecStart={' '.join(_systemd_word(w) for w in command(pool, target))}\n"
            f"# Exit {EXIT_RECYCLED}: the worker recycled itself (max jobs, memory, max time).\n"
            "# A fixed delay: systemd's back-off (RestartSteps) would also slow every recycle.\n"
            f"SuccessExitStatus={EXIT_RECYCLED}\n"
            "Restart=always\nRestartSec=1\n"
            "KillSignal=SIGTERM\nKillMode=mixed\n"
            f"TimeoutStopSec={stop_seconds(pool)}\n\n"
            "[Install]\nWantedBy=conveyor.target\n"
        )
    return files


# -- docker-compose ---------------------------------------------------------------------------
def _dollars(value: str) -> str:
    """Compose interpolates ``$``: ``$$`` is a literal one."""
    return value.replace("$", "$$")


def compose(pools: list[Pool], target: Target) -> dict[str, str]:
    """A service per pool with ``deploy.replicas`` and ``stop_grace_period``."""
    services: dict[str, Any] = {}
    for pool in pools:
        env = {
            "CONVEYOR_URL": "${CONVEYOR_URL:?set CONVEYOR_URL}",
            **{k: _dollars(v) for k, v in pool.worker_env().items()},
        }
        service: dict[str, Any] = {
            "image": target.image,
            "command": [_dollars(w) for w in command(pool, target)],
            "environment": env,
            "init": True,
            "restart": "unless-stopped",
            "stop_signal": "SIGTERM",
            "stop_grace_period": f"{stop_seconds(pool)}s",
            "deploy": {
                "replicas": pool.processes,
                # docker stack deploy: one replica at a time, the new one before the old stops.
                "update_config": {"parallelism": 1, "order": "start-first"},
            },
        }
        if target.user is not None:
            service["user"] = target.user
        services[unit_name(pool)] = service
    header = "Conveyor worker pools (written by `conveyor export compose`)."
    return {"docker-compose.conveyor.yml": dump_all([{"services": services}], header)}


EXPORTERS: dict[str, Callable[[list[Pool], Target], dict[str, str]]] = {
    "supervisord": supervisord,
    "systemd": systemd,
    "compose": compose,
    "kubernetes": kubernetes,
}
