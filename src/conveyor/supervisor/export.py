"""`conveyor export`: the configured pools as configs for supervisord, systemd, docker-compose
and Kubernetes.

Each exporter returns ``{file name: text}``. Every pool becomes one program / template unit /
service / Deployment running ``processes`` copies of ``conveyor worker`` with the pool's
flags. Stop timeouts are the pool's grace period plus `STOP_MARGIN`, so a worker always gets
to finish (or release) its running jobs before anything kills it. The backend URL is never
written into a file: it comes from the environment (``CONVEYOR_URL``).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conveyor.supervisor.config import Pool
from conveyor.supervisor.emit import dump_all

#: Seconds past the worker's grace period before a process manager may SIGKILL it.
STOP_MARGIN = 15
KINDS = ("supervisord", "systemd", "compose", "kubernetes")


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how the exported workers run."""

    app: str
    #: The ``conveyor`` executable (absolute for supervisord and systemd).
    executable: str = "conveyor"
    workdir: str = "/srv/app"
    image: str = "my-app:latest"
    #: Kubernetes: the Secret holding the backend URL under key ``url``.
    secret_name: str = "conveyor"  # noqa: S105 - a name, not a secret


def command(pool: Pool, target: Target, executable: str | None = None) -> list[str]:
    """The worker command of ``pool``."""
    return [executable or target.executable, "worker", "--app", target.app, *pool.worker_args()]


def stop_seconds(pool: Pool) -> int:
    """How long a process manager waits after SIGTERM before SIGKILL."""
    return int(pool.grace + 0.999) + STOP_MARGIN


def _name(pool: Pool) -> str:
    return f"conveyor-{pool.name.replace('_', '-')}"


# -- supervisord ------------------------------------------------------------------------------
def supervisord(pools: list[Pool], target: Target) -> dict[str, str]:
    """One ``[program:]`` per pool with ``numprocs``, in a ``[group:conveyor]``."""
    parts = [
        "; Conveyor worker pools for supervisord (written by `conveyor export supervisord`).\n"
        "; supervisord passes its own environment: set CONVEYOR_URL there.\n"
        f"[group:conveyor]\nprograms={','.join(_name(p) for p in pools)}\n"
    ]
    for pool in pools:
        env = ",".join(f'{k}="{v}"' for k, v in pool.worker_env().items())
        parts.append(
            f"[program:{_name(pool)}]\n"
            f"command={shlex.join(command(pool, target))}\n"
            "process_name=%(program_name)s_%(process_num)02d\n"
            f"numprocs={pool.processes}\n"
            f"directory={target.workdir}\n"
            f"environment={env}\n"
            "autostart=true\nautorestart=true\nstartsecs=1\nstartretries=10\n"
            f"stopsignal=TERM\nstopwaitsecs={stop_seconds(pool)}\n"
            "stopasgroup=false\nkillasgroup=true\n"
            "redirect_stderr=true\n"
            "stdout_logfile=/var/log/conveyor/%(program_name)s_%(process_num)02d.log\n"
        )
    return {"conveyor.conf": "\n".join(parts)}


# -- systemd ----------------------------------------------------------------------------------
def systemd(pools: list[Pool], target: Target) -> dict[str, str]:
    """A template unit ``conveyor-<pool>@.service`` per pool and a ``conveyor.target``."""
    files: dict[str, str] = {}
    enable = " ".join(
        f"{_name(p)}@{{1..{p.processes}}}.service" if p.processes > 1 else f"{_name(p)}@1.service"
        for p in pools
    )
    wants = " ".join(f"{_name(p)}@{i}.service" for p in pools for i in range(1, p.processes + 1))
    files["conveyor.target"] = (
        "# Conveyor worker pools (written by `conveyor export systemd`).\n"
        f"# Enable: systemctl enable --now {enable}\n"
        "[Unit]\nDescription=Conveyor workers\n"
        f"Wants={wants}\n\n[Install]\nWantedBy=multi-user.target\n"
    )
    for pool in pools:
        env = " ".join(f'"{k}={v}"' for k, v in pool.worker_env().items())
        files[f"{_name(pool)}@.service"] = (
            f"# Pool {pool.name}: run {pool.processes} instance(s), "
            f"{_name(pool)}@1 ... @{pool.processes}.\n"
            f"[Unit]\nDescription=Conveyor worker, pool {pool.name} (instance %i)\n"
            "After=network-online.target\nWants=network-online.target\n"
            "PartOf=conveyor.target\n\n"
            "[Service]\nType=simple\n"
            f"WorkingDirectory={target.workdir}\n"
            "# CONVEYOR_URL (with its password) goes in this file, root-only (chmod 600).\n"
            "EnvironmentFile=-/etc/conveyor/conveyor.env\n"
            f"Environment={env}\n"
            f"ExecStart={shlex.join(command(pool, target))}\n"
            "Restart=always\nRestartSec=1\n"
            "# systemd >= 254: back off up to a minute when a worker keeps crashing.\n"
            "RestartSteps=6\nRestartMaxDelaySec=60\n"
            "KillSignal=SIGTERM\nKillMode=mixed\n"
            f"TimeoutStopSec={stop_seconds(pool)}\n\n"
            "[Install]\nWantedBy=conveyor.target\n"
        )
    return files


# -- docker-compose ---------------------------------------------------------------------------
def compose(pools: list[Pool], target: Target) -> dict[str, str]:
    """A service per pool with ``deploy.replicas`` and ``stop_grace_period``."""
    services: dict[str, Any] = {}
    for pool in pools:
        env = {"CONVEYOR_URL": "${CONVEYOR_URL:?set CONVEYOR_URL}", **pool.worker_env()}
        services[_name(pool)] = {
            "image": target.image,
            "command": command(pool, target),
            "environment": env,
            "init": True,
            "restart": "unless-stopped",
            "stop_signal": "SIGTERM",
            "stop_grace_period": f"{stop_seconds(pool)}s",
            "deploy": {"replicas": pool.processes},
        }
    header = "Conveyor worker pools (written by `conveyor export compose`)."
    return {"docker-compose.conveyor.yml": dump_all([{"services": services}], header)}


# -- Kubernetes -------------------------------------------------------------------------------
def _labels(pool: Pool) -> dict[str, str]:
    return {"app.kubernetes.io/name": "conveyor", "app.kubernetes.io/component": pool.name}


def _container(pool: Pool, target: Target) -> dict[str, Any]:
    env: list[dict[str, Any]] = [
        {
            "name": "CONVEYOR_URL",
            "valueFrom": {"secretKeyRef": {"name": target.secret_name, "key": "url"}},
        },
        *({"name": k, "value": v} for k, v in pool.worker_env().items()),
    ]
    resources: dict[str, Any] = {"requests": {"cpu": "250m", "memory": "256Mi"}}
    if pool.memory_limit is not None:
        # The worker recycles itself at memory_limit, well before the OOM killer would.
        resources["limits"] = {"memory": f"{int(pool.memory_limit * 1.25) + 64}Mi"}
    return {
        "name": "worker",
        "image": target.image,
        "command": command(pool, target),
        "env": env,
        "resources": resources,
        # Liveness: the worker process (PID 1) is alive. It deliberately does not touch
        # the backend, so a backend outage never restarts every pod at once.
        "livenessProbe": {
            "exec": {"command": ["python", "-c", "import os; os.kill(1, 0)"]},
            "periodSeconds": 30,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
        # Readiness: the backend answers (`conveyor health` exits 0; docs/monitoring.md).
        "readinessProbe": {
            "exec": {"command": ["conveyor", "health", "--timeout", "10"]},
            "initialDelaySeconds": 5,
            "periodSeconds": 30,
            "timeoutSeconds": 20,
            "failureThreshold": 3,
        },
    }


def kubernetes(pools: list[Pool], target: Target) -> dict[str, str]:
    """A Deployment per pool (grace period, probes) and an example HorizontalPodAutoscaler."""
    docs: list[dict[str, Any]] = []
    for pool in pools:
        labels = _labels(pool)
        docs.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": _name(pool), "labels": labels},
                "spec": {
                    "replicas": pool.processes,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "terminationGracePeriodSeconds": stop_seconds(pool),
                            "containers": [_container(pool, target)],
                        },
                    },
                },
            }
        )
    for pool in pools:
        docs.append(
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": _name(pool), "labels": _labels(pool)},
                "spec": {
                    "scaleTargetRef": {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": _name(pool),
                    },
                    "minReplicas": pool.processes,
                    "maxReplicas": pool.processes * 4,
                    "metrics": [
                        {
                            "type": "Resource",
                            "resource": {
                                "name": "cpu",
                                "target": {"type": "Utilization", "averageUtilization": 70},
                            },
                        }
                    ],
                    # Scale down slowly: each removed pod first finishes its running jobs.
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
                },
            }
        )
    header = (
        "Conveyor worker pools (written by `conveyor export kubernetes`).\n"
        f"Needs a Secret {target.secret_name!r} with key 'url' (the backend URL):\n"
        f"  kubectl create secret generic {target.secret_name} --from-literal=url=redis://...\n"
        "The HorizontalPodAutoscalers are an example on CPU; queue depth is a better signal\n"
        "for IO-bound jobs (e.g. KEDA's Redis or PostgreSQL scalers)."
    )
    return {"kubernetes.yaml": dump_all(docs, header)}


EXPORTERS: dict[str, Callable[[list[Pool], Target], dict[str, str]]] = {
    "supervisord": supervisord,
    "systemd": systemd,
    "compose": compose,
    "kubernetes": kubernetes,
}
