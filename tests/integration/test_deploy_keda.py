"""`conveyor export kubernetes --autoscale keda` writes objects KEDA accepts, scaling on
what each pool serves:

* each exported ScaledObject passes KEDA's own schema (``keda/keda_validate.mjs``, with
  ``@kubernetes-models/keda``, generated from KEDA's API types, under Node.js);
* each trigger's query, run by Prometheus' own engine (``promtool test rules``) on a worker's
  ``conveyor_queue_jobs`` series, counts the ready jobs of the queues and priorities the
  pool's workers take (`fnmatch.fnmatchcase` on the queue globs), each series once.

scripts/test.sh installs the package (pinned by ``keda/package-lock.json``) into
``$VENV/node-keda``, and promtool; without them (or ``node``) the tests skip, and fail
under ``CI``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.integration.deploy_support import make_app, tool

from conveyor.supervisor.config import Pool, load_pools
from conveyor.supervisor.target import unit_name

pytestmark = pytest.mark.timeout(120)

VALIDATOR = Path(__file__).parent / "keda" / "keda_validate.mjs"
#: Where scripts/test.sh installs keda/package-lock.json: beside the test environment.
MODULES = Path(sys.prefix) / "node-keda"
#: Pools covering what the trigger's query is built from: queue lists and globs (with
#: characters PromQL and RE2 must escape), priorities, concurrency, every queue.
POOLS = """
queue_multi_worker = true
[pools.jobs]
processes = 4
[pools.mail]
processes = 2
concurrency = 25
priorities = ["high", "normal"]
[pools.reports]
queues = ["reports", "exports-*", "tenant.a?", "shard-[0-2]", "x[!ab]y", "odd[z-a]"]
[pools.everything]
queues = ["*"]
concurrency = 1
"""
#: Every way of asking for KEDA objects: the pools of multi mode, named pools, single mode,
#: the default Prometheus server and another one.
VARIANTS = {
    "multi": ["multi"],
    "named": ["mail", "reports", "--prometheus", "https://prom.example.org:9443/prefix"],
    "single": ["single", "--prometheus", "http://prometheus.monitoring:9090"],
    "default": [],
}


def _validator() -> tuple[str, Path]:
    """``node`` and the directory with the KEDA models; skip, or fail under CI."""
    node = tool("node", "Node.js: scripts/test.sh installs it with apt-get")
    if not (MODULES / "node_modules" / "@kubernetes-models" / "keda").is_dir():
        message = f"@kubernetes-models/keda is not installed in {MODULES} (run scripts/test.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return node, MODULES


def _validate(*files: Path) -> subprocess.CompletedProcess[str]:
    node, modules = _validator()
    return subprocess.run(
        [node, str(VALIDATOR), "--modules", str(modules), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


KEDA_ARGS = ("--autoscale", "keda", "--app", "deploy_app:app", "--json")


def _run_export(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor", "export", "kubernetes", *args, *KEDA_ARGS],
        cwd=workdir,
        env={k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _export(workdir: Path, *args: str) -> dict[str, str]:
    done = _run_export(workdir, *args)
    assert done.returncode == 0, done.stderr
    return {f["name"]: f["text"] for f in yaml.safe_load(done.stdout)["files"]}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    app = tmp_path_factory.mktemp("keda") / "app"
    make_app(app)
    (app / "conveyor.toml").write_text(POOLS)
    return app


@pytest.fixture(scope="module")
def exported(app: Path) -> dict[str, dict[str, str]]:
    """Each variant's exported files."""
    return {name: _export(app, *args) for name, args in VARIANTS.items()}


def _scaled_objects(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d and d["kind"] == "ScaledObject"]


def test_every_exported_scaled_object_passes_kedas_schema(
    exported: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    # Given the keda.yaml of every variant, and a kubernetes.yaml (its Deployments are
    # not KEDA's and are left to kubernetes-validate)
    _validator()
    files = []
    expected = 0
    for name, out in exported.items():
        (tmp_path / f"{name}-keda.yaml").write_text(out["keda.yaml"])
        files.append(tmp_path / f"{name}-keda.yaml")
        objects = _scaled_objects(out["keda.yaml"])
        deployments = [d for d in yaml.safe_load_all(out["kubernetes.yaml"]) if d]
        # One ScaledObject per Deployment, each scaling its own Deployment
        assert sorted(o["spec"]["scaleTargetRef"]["name"] for o in objects) == sorted(
            d["metadata"]["name"] for d in deployments
        )
        expected += len(objects)
    (tmp_path / "kubernetes.yaml").write_text(exported["multi"]["kubernetes.yaml"])
    # When the validator checks them all
    done = _validate(*files, tmp_path / "kubernetes.yaml")
    # Then every ScaledObject was checked and none has an error
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{expected} KEDA object(s) checked, 0 error(s)" in done.stdout
    assert expected >= 8


def test_the_validator_rejects_a_scaled_object_keda_would_refuse(
    exported: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    # Given an exported ScaledObject with a count as text, a threshold as a number (KEDA's
    # trigger metadata is text only), a scale target without its name and a misspelt field
    _validator()
    good, *_ = _scaled_objects(exported["multi"]["keda.yaml"])
    bad = yaml.safe_load(yaml.safe_dump(good))
    bad["spec"]["minReplicaCount"] = "4"
    bad["spec"]["triggers"][0]["metadata"]["threshold"] = 10
    del bad["spec"]["scaleTargetRef"]["name"]
    bad["spec"]["coolDownPeriod"] = bad["spec"].pop("cooldownPeriod")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump_all([good, bad]))
    # When the validator checks the file
    done = _validate(path)
    # Then it fails, naming the document and the path of each error, and only the bad one's
    assert done.returncode == 1, done.stdout + done.stderr
    name = bad["metadata"]["name"]
    where = f"{path}: document 2 (ScaledObject {name}): "
    errors = [line for line in done.stdout.splitlines() if "document" in line]
    assert all(line.startswith(where) for line in errors), done.stdout
    assert sorted(line.removeprefix(where) for line in errors) == [
        "/spec/coolDownPeriod unknown field (ScaledObjectSpec has advanced, cooldownPeriod, "
        "fallback, idleReplicaCount, initialCooldownPeriod, maxReplicaCount, minReplicaCount, "
        "pollingInterval, scaleTargetRef, triggers)",
        "/spec/minReplicaCount must be integer",
        "/spec/scaleTargetRef must have required property name",
        "/spec/triggers/0/metadata/threshold must be string",
    ]


def test_the_validator_refuses_a_file_without_keda_objects(
    exported: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    # A file of Deployments only (the wrong file passed) is an error, not a pass
    _validator()
    path = tmp_path / "kubernetes.yaml"
    path.write_text(exported["multi"]["kubernetes.yaml"])
    done = _validate(path)
    assert done.returncode == 1
    assert "no KEDA object" in done.stdout


#: Queue names a store may report, matched by some of the pools' globs and not by others
#: (with the built-in pools' own queues: jobs, default, mail, events).
QUEUES = (
    *("jobs", "default", "mail", "events", "reports", "reports2", "exports-", "exports-2024"),
    *("tenant.ab", "tenant.a", "tenant.abc", "shard-0", "shard-2", "shard-3", "shard-x"),
    *("xcy", "xay", "xy", "oddz", "odd", "other.x"),
)


def _series() -> list[tuple[str, str, str, int]]:
    """``(queue, priority, state, jobs)``: a different count for each series."""
    rows = []
    for i, queue in enumerate(QUEUES):
        for j, priority in enumerate(("high", "normal", "low")):
            for state, base in (("ready", 1), ("running", 1000)):
                rows.append((queue, priority, state, base + 3 * i + j))
    return rows


def _ready_jobs(pool: Pool) -> int:
    """The ready jobs the workers of ``pool`` would take, by the worker's own matching."""
    return sum(
        n
        for queue, priority, state, n in _series()
        if state == "ready"
        and (pool.queues is None or any(fnmatchcase(queue, q) for q in pool.queues))
        and (pool.priorities is None or priority in pool.priorities)
    )


def test_each_trigger_counts_the_ready_jobs_its_pool_serves(
    app: Path, exported: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    promtool = tool("promtool", "scripts/test.sh takes it from Debian's prometheus package")
    pools = {unit_name(p): p for p in load_pools({}, app).selected()}
    queries = {
        o["metadata"]["name"]: o["spec"]["triggers"][0]["metadata"]["query"]
        for o in _scaled_objects(exported["multi"]["keda.yaml"])
    }
    assert set(queries) == set(pools)
    # Given every series twice, as two workers both report the whole store's depth
    series = [
        {
            "series": f'conveyor_queue_jobs{{queue="{q}",priority="{p}",state="{s}",'
            f'instance="worker-{w}"}}',
            "values": str(n),
        }
        for q, p, s, n in _series()
        for w in (1, 2)
    ]
    # When Prometheus evaluates each pool's query, then it counts its pool's ready jobs once
    checks = []
    for name, query in sorted(queries.items()):
        expected = _ready_jobs(pools[name])
        assert expected > 0, name
        checks.append(
            {"expr": query, "eval_time": "0m", "exp_samples": [{"labels": "{}", "value": expected}]}
        )
    tests = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": checks}],
    }
    path = tmp_path / "keda-queries.test.yml"
    path.write_text(yaml.safe_dump(tests))
    done = subprocess.run(
        [promtool, "test", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(checks) >= 4


def test_a_prometheus_keda_cannot_query_is_refused(app: Path) -> None:
    # `prometheus:9090` would pass kubectl apply and fail in KEDA's logs only
    done = _run_export(app, "--prometheus", "prom:9090")
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: --prometheus 'prom:9090': KEDA needs the Prometheus server's http:// or "
        "https:// URL, e.g. --prometheus http://prometheus-operated.monitoring.svc:9090"
    ]
