"""`conveyor export kubernetes`: a Deployment per pool, and its autoscaler.

* Workers serve ``/metrics``, ``/livez`` and ``/readyz`` on `Target.metrics_port`; the pods
  carry Prometheus' scrape annotations, and the probes are HTTP GETs on those paths.
* A Deployment an autoscaler manages has no ``replicas`` (each ``kubectl apply`` would shrink
  the pool back); with ``--autoscale none`` it has the pool's ``processes``.
* Rollouts start a new pod before stopping an old one (``maxSurge: 1``, ``maxUnavailable:
  0``), and ``terminationGracePeriodSeconds`` is the worker's grace period plus the margin.
* Workers run as non-root with a read-only root filesystem (``/tmp`` is an ``emptyDir``).
* ``--autoscale keda`` writes ``keda.yaml``: a ScaledObject per pool scaling on the ready jobs
  of its queues (``conveyor_queue_jobs`` through Prometheus), its queue globs written as the
  RE2 expression matching what the worker's fnmatch matches, ``[set]`` included.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from conveyor.backends.globs import AnyChar, AnyRun, Literal, parse
from conveyor.errors import ConfigError
from conveyor.settings import Settings
from conveyor.supervisor.config import Pool
from conveyor.supervisor.emit import dump_all
from conveyor.supervisor.target import Target, command, stop_seconds, unit_name

#: Jobs each process runs at once when the pool does not say (WORKER_CONCURRENCY's default).
DEFAULT_CONCURRENCY: int = Settings.model_fields["worker_concurrency"].default


def _labels(pool: Pool) -> dict[str, str]:
    return {"app.kubernetes.io/name": "conveyor", "app.kubernetes.io/component": pool.name}


def _probe(path: str, target: Target, period: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": target.metrics_port},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
    }


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
    metrics = ["--metrics-port", str(target.metrics_port), "--metrics-host", "0.0.0.0"]  # noqa: S104
    return {
        "name": "worker",
        "image": target.image,
        "command": [*command(pool, target), *metrics],
        "env": env,
        "ports": [{"name": "metrics", "containerPort": target.metrics_port}],
        "resources": resources,
        # /livez fails when the worker's event loop stops ticking; it never asks the backend,
        # so a backend outage does not restart every pod at once.
        "livenessProbe": _probe("/livez", target, 30),
        # /readyz: the backend answered the worker's last read in time.
        "readinessProbe": _probe("/readyz", target, 15),
        "startupProbe": {**_probe("/livez", target, 2), "failureThreshold": 30},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108 - an emptyDir
    }


def _pod_security(target: Target) -> dict[str, Any]:
    context: dict[str, Any] = {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if target.user is not None and target.user.isdigit():
        context["runAsUser"] = int(target.user)
    return context


def deployment(pool: Pool, target: Target) -> dict[str, Any]:
    """The Deployment of ``pool``."""
    labels = _labels(pool)
    spec: dict[str, Any] = {}
    if target.autoscale == "none":
        spec["replicas"] = pool.processes
    spec |= {
        "selector": {"matchLabels": labels},
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        },
        "template": {
            "metadata": {
                "labels": labels,
                "annotations": {
                    "prometheus.io/scrape": "true",
                    "prometheus.io/port": str(target.metrics_port),
                    "prometheus.io/path": "/metrics",
                },
            },
            "spec": {
                "terminationGracePeriodSeconds": stop_seconds(pool),
                "securityContext": _pod_security(target),
                "containers": [_container(pool, target)],
                "volumes": [{"name": "tmp", "emptyDir": {}}],
            },
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": unit_name(pool), "labels": labels},
        "spec": spec,
    }


def autoscaler(pool: Pool) -> dict[str, Any]:
    """An example HorizontalPodAutoscaler on CPU for ``pool``."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": unit_name(pool), "labels": _labels(pool)},
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": unit_name(pool),
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


def _promql_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def queue_depth_query(pool: Pool) -> str:
    """PromQL: the ready jobs of the pool's queues. Every worker reports the whole store's
    depth, so each series is taken once (``max``) before the sum."""
    selector = 'state="ready"'
    if pool.queues is not None and "*" not in pool.queues:
        parts = [re2_pattern(q) for q in pool.queues]
        selector += f",queue=~{_promql_string('|'.join(parts))}"
    if pool.priorities is not None:
        selector += f",priority=~{_promql_string('|'.join(pool.priorities))}"
    return f"sum(max by (queue, priority) (conveyor_queue_jobs{{{selector}}}))"


def re2_pattern(glob: str) -> str:
    """The queue glob ``glob`` as an RE2 expression (Prometheus' ``=~``, anchored there)
    matching the queue names the worker's `fnmatch.fnmatchcase` matches: ``*``, ``?``,
    ``[set]`` and ``[!set]``; every other character literal."""
    out = []
    for token in parse(glob):
        if isinstance(token, AnyRun):
            out.append(".*")
        elif isinstance(token, AnyChar):
            out.append(".")
        elif isinstance(token, Literal):
            out.append(re.escape(token.char))
        elif not token.ranges:
            # A set left empty (fnmatch drops a backwards range: ``[z-a]``) matches no
            # character; negated, any one.
            out.append("." if token.negate else "[^\\x{0}-\\x{10FFFF}]")
        else:
            body = "".join(_re2_span(lo, hi) for lo, hi in token.ranges)
            out.append("[" + ("^" if token.negate else "") + body + "]")
    return "".join(out)


def _re2_span(lo: int, hi: int) -> str:
    def char(code: int) -> str:
        # RE2 takes a backslash before any ASCII punctuation, and refuses it elsewhere.
        c = chr(code)
        return "\\" + c if c.isascii() and not c.isalnum() else c

    return char(lo) if lo == hi else f"{char(lo)}-{char(hi)}"


def prometheus_url(url: str) -> str:
    """``url`` if KEDA's Prometheus scaler can query it (``http(s)://host...``), else a
    `ConfigError`: a bad one would pass ``kubectl apply`` and fail in KEDA's logs only."""
    try:
        parts = urlsplit(url)
        usable = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # an unclosed IPv6 bracket
        usable = False
    if not usable or re.search(r"\s", url):
        raise ConfigError(
            f"--prometheus {url!r}: KEDA needs the Prometheus server's http:// or https:// "
            "URL, e.g. --prometheus http://prometheus-operated.monitoring.svc:9090"
        )
    return url


def scaled_object(pool: Pool, target: Target) -> dict[str, Any]:
    """A KEDA ScaledObject scaling ``pool`` on its ready jobs: one pod per ``concurrency``."""
    per_pod = pool.concurrency or DEFAULT_CONCURRENCY
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": unit_name(pool), "labels": _labels(pool)},
        "spec": {
            "scaleTargetRef": {"name": unit_name(pool)},
            "minReplicaCount": pool.processes,
            "maxReplicaCount": pool.processes * 4,
            "cooldownPeriod": 300,
            "triggers": [
                {
                    "type": "prometheus",
                    "metadata": {
                        "serverAddress": prometheus_url(target.prometheus),
                        "query": queue_depth_query(pool),
                        "threshold": str(per_pod),
                    },
                }
            ],
        },
    }


def kubernetes(pools: list[Pool], target: Target) -> dict[str, str]:
    """``kubernetes.yaml`` (Deployments, and HPAs with ``hpa``); ``keda.yaml`` with ``keda``."""
    docs = [deployment(pool, target) for pool in pools]
    if target.autoscale == "hpa":
        docs += [autoscaler(pool) for pool in pools]
    header = (
        "Conveyor worker pools (written by `conveyor export kubernetes`).\n"
        f"Needs a Secret {target.secret_name!r} with key 'url' (the backend URL):\n"
        f"  kubectl create secret generic {target.secret_name} --from-literal=url=redis://...\n"
        "The image runs as a non-root user: give it a numeric USER, or pass --user UID."
    )
    files = {"kubernetes.yaml": dump_all(docs, header)}
    if target.autoscale == "keda":
        keda = [scaled_object(pool, target) for pool in pools]
        files["keda.yaml"] = dump_all(
            keda,
            "KEDA ScaledObjects for the Conveyor pools: scale on ready jobs via Prometheus.",
        )
    return files
