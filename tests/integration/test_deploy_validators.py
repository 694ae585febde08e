"""Every `conveyor export` file passes its manager's own validator, and the probes it names
answer on a real worker (issue 18).

systemd-analyze and systemctl come with systemd; kubernetes-validate and check-jsonschema
(with the compose specification's schema vendored in it) come from the ``test`` extra.
promtool (taken from Debian's prometheus package by scripts/test.sh) lints a worker's /metrics.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.integration.deploy_support import make_app, tool, wait_for
from tests.integration.redis_server import free_port

pytestmark = pytest.mark.timeout(180)

DOCS = (Path(__file__).parents[2] / "docs" / "deployment.md").read_text()
POOLS = """
queue_multi_worker = true
[pools.jobs]
processes = 4
[pools.mail]
processes = 2
grace_period = 90
[pools.reports]
queues = ["reports", "exports-*"]
"""
#: The Kubernetes versions kubernetes-validate has schemas for that Conveyor supports.
K8S_VERSIONS = [f"1.{minor}.0" for minor in range(25, 38)]


def _export(workdir: Path, *args: str) -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "conveyor", "export", *args, "--app", "deploy_app:app", "--json"],
        cwd=workdir,
        env={k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return {f["name"]: f["text"] for f in yaml.safe_load(done.stdout)["files"]}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    make_app(app)
    (app / "conveyor.toml").write_text(POOLS)
    return app


def _account() -> str:
    """An ordinary account that exists here (systemd warns about root and nobody)."""
    for name in ("daemon", "bin"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    return pwd.getpwuid(os.getuid()).pw_name


# -- systemd ----------------------------------------------------------------------------------
def _systemd_files(workdir: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    user = _account()
    files = _export(
        workdir, "systemd", "multi", "--venv", sys.prefix, "--workdir", str(workdir), "--user", user
    )
    units = tmp_path / "units"
    units.mkdir()
    for name, text in files.items():
        (units / name).write_text(text)
    return units, files


def test_systemd_analyze_verifies_the_units(workdir: Path, tmp_path: Path) -> None:
    analyze = tool("systemd-analyze", "it comes with systemd: apt-get install systemd")
    units, files = _systemd_files(workdir, tmp_path)
    instances = [f"{name.replace('@.service', '@1.service')}" for name in files if "@" in name]
    done = subprocess.run(
        [analyze, "verify", "conveyor.target", *instances],
        cwd=units,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # No unknown keys (RestartSteps= on systemd 252), no bad paths, no warnings at all
    assert done.returncode == 0, done.stderr
    ours = [line for line in done.stderr.splitlines() if str(units) in line]
    assert ours == [], done.stderr


def test_systemctl_enable_covers_the_target_and_its_instances(
    workdir: Path, tmp_path: Path
) -> None:
    systemctl = tool("systemctl", "it comes with systemd: apt-get install systemd")
    units, files = _systemd_files(workdir, tmp_path)
    root = tmp_path / "root"
    system = root / "etc" / "systemd" / "system"
    system.mkdir(parents=True)
    for name in files:
        (system / name).write_text((units / name).read_text())
    # Given the enable line the target names, as docs/deployment.md gives it
    [line] = [ln for ln in files["conveyor.target"].splitlines() if ln.startswith("# Enable: ")]
    enable = line.removeprefix("# Enable: ")
    assert enable.startswith("systemctl enable --now conveyor.target ")
    assert "systemctl enable --now conveyor.target conveyor-jobs@{1..4}.service" in DOCS
    # When it runs against the root directory (no running systemd: no --now)
    words = enable.replace("--now ", "").replace("systemctl ", "", 1)
    command = f"{shlex.quote(systemctl)} --root={shlex.quote(str(root))} {words}"
    done = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    # Then the target and every instance are enabled: they come back after a reboot
    wanted = ["conveyor.target"] + [f"conveyor-jobs@{i}.service" for i in range(1, 5)]
    wanted += ["conveyor-mail@1.service", "conveyor-mail@2.service", "conveyor-reports@1.service"]
    state = subprocess.run(
        [systemctl, f"--root={root}", "is-enabled", *wanted],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert state.stdout.split() == ["enabled"] * len(wanted), state.stdout + state.stderr


def test_a_systemd_worker_without_conveyor_url_exits_naming_the_env_file(
    workdir: Path, tmp_path: Path
) -> None:
    # Given the unit of pool jobs, and an environment file that lacks CONVEYOR_URL
    env_file = tmp_path / "conveyor.env"
    env_file.write_text("WORKER_CONCURRENCY=2\n")
    files = _export(
        workdir,
        "systemd",
        "jobs",
        "--venv",
        sys.prefix,
        "--workdir",
        str(workdir),
        "--user",
        _account(),
        "--env-file",
        str(env_file),
    )
    [unit] = [text for name, text in files.items() if name.endswith("@.service")]
    lines = [line for line in unit.splitlines() if not line.startswith("#")]
    # When systemd would start it: Environment= first, the file's values over them
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    for line in lines:
        if line.startswith("Environment="):
            pairs = shlex.split(line.removeprefix("Environment=").replace("%%", "%"))
            env |= dict(pair.split("=", 1) for pair in pairs)
    assert [ln for ln in lines if ln.startswith("EnvironmentFile=")] == [
        f"EnvironmentFile={env_file}"
    ]
    env |= dict(ln.split("=", 1) for ln in env_file.read_text().splitlines())
    [exec_start] = [ln.removeprefix("ExecStart=") for ln in lines if ln.startswith("ExecStart=")]
    argv = shlex.split(exec_start.replace("%%", "%").replace("$$", "$"))
    done = subprocess.run(
        argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    # Then the worker refuses to start, naming the file to fix, instead of serving a new
    # conveyor.db in its working directory
    assert done.returncode == 2, done.stderr
    assert f"put CONVEYOR_URL=... in {env_file}" in done.stderr
    assert not (workdir / "conveyor.db").exists()


# -- Kubernetes -------------------------------------------------------------------------------
def test_kubernetes_validate_strict_on_every_version(workdir: Path, tmp_path: Path) -> None:
    validate = tool("kubernetes-validate", "pip install kubernetes-validate: the test extra")
    manifests = []
    for autoscale in ("hpa", "keda", "none"):
        files = _export(workdir, "kubernetes", "multi", "--autoscale", autoscale)
        manifest = tmp_path / f"kubernetes-{autoscale}.yaml"
        manifest.write_text(files["kubernetes.yaml"])
        manifests.append(manifest)
        assert ("keda.yaml" in files) == (autoscale == "keda")
        docs = list(yaml.safe_load_all(files["kubernetes.yaml"]))
        deployments = [d for d in docs if d["kind"] == "Deployment"]
        assert {d["metadata"]["name"] for d in deployments} >= {
            "conveyor-jobs",
            "conveyor-mail",
            "conveyor-reports",
        }
        for deployment in deployments:
            # An autoscaler owns the replica count: `kubectl apply` must not reset it
            assert ("replicas" in deployment["spec"]) == (autoscale == "none")
    for version in K8S_VERSIONS:
        done = subprocess.run(
            [validate, "--strict", "--quiet", "-k", version, *map(str, manifests)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"Kubernetes {version}: {done.stdout}{done.stderr}"


def _container(files: dict[str, str], name: str) -> dict[str, Any]:
    docs = yaml.safe_load_all(files["kubernetes.yaml"])
    deployment = next(d for d in docs if d["metadata"]["name"] == name)
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return int(answer.status), answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError:
        return 0, ""


def test_the_probes_the_manifest_names_answer_on_a_worker(workdir: Path, tmp_path: Path) -> None:
    # Given the Deployment of pool jobs, on a free port
    port = free_port()
    files = _export(workdir, "kubernetes", "jobs", "--metrics-port", str(port))
    container = _container(files, "conveyor-jobs")
    probes = [container[k]["httpGet"] for k in ("livenessProbe", "readinessProbe")]
    assert [p["path"] for p in probes] == ["/livez", "/readyz"]
    assert all(p["port"] == port for p in probes)
    # When its command runs (this machine's conveyor, on loopback, a SQLite store)
    argv = [w if w != "0.0.0.0" else "127.0.0.1" for w in container["command"]]
    argv = [str(Path(sys.executable).parent / "conveyor"), *argv[1:]]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env |= {e["name"]: e["value"] for e in container["env"] if "value" in e}
    env["CONVEYOR_URL"] = f"sqlite:///{tmp_path / 'store.db'}"
    worker = subprocess.Popen(
        argv, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        # Then every probe path answers 200, and /metrics is served on the annotated port
        for probe in probes:
            url = f"http://127.0.0.1:{port}{probe['path']}"
            wait_for(f"GET {url} -> 200", lambda url=url: _get(url)[0] == 200, 60)
        status, metrics = _get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and "conveyor_worker_uptime_seconds" in metrics
        _promtool(metrics, tmp_path)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)


def _promtool(metrics: str, tmp_path: Path) -> None:
    """``promtool check metrics`` (scripts/test.sh takes promtool from Debian's prometheus)."""
    promtool = tool("promtool", "scripts/test.sh takes it from Debian's prometheus package")
    done = subprocess.run(
        [promtool, "check", "metrics"],
        input=metrics,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# -- compose ----------------------------------------------------------------------------------
def test_compose_matches_the_compose_specification(workdir: Path, tmp_path: Path) -> None:
    check = tool("check-jsonschema", "pip install check-jsonschema: the test extra")
    files = _export(workdir, "compose", "multi", "--user", "1000")
    path = tmp_path / "docker-compose.conveyor.yml"
    path.write_text(files["docker-compose.conveyor.yml"])
    done = subprocess.run(
        [check, "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    services = yaml.safe_load(path.read_text())["services"]
    # compose refuses to start without CONVEYOR_URL, and ${...} is the only interpolation
    for service in services.values():
        assert service["environment"]["CONVEYOR_URL"] == "${CONVEYOR_URL:?set CONVEYOR_URL}"
        text = yaml.safe_dump({k: v for k, v in service.items() if k != "environment"})
        assert not re.search(r"(?<!\$)\$(?!\$)", text.replace("$$", ""))


# -- docs/deployment.md -----------------------------------------------------------------------
def _documented_exports() -> list[str]:
    lines = [line.strip() for line in DOCS.splitlines()]
    return [
        line.removeprefix("sudo /srv/shop/.venv/bin/")
        for line in lines
        if line.startswith(("conveyor export ", "sudo /srv/shop/.venv/bin/conveyor export "))
    ]


def test_every_documented_export_runs(workdir: Path, tmp_path: Path) -> None:
    # Given each `conveyor export` line of docs/deployment.md, with this machine's paths and
    # the real --install (run against a real supervisord in test_deploy_supervisord) dry
    commands = _documented_exports()
    assert len(commands) >= 8
    for line in commands:
        words = shlex.split(
            line.replace("shop.jobs:app", "deploy_app:app")
            .replace("/srv/shop/.venv", sys.prefix)
            .replace("/srv/shop", str(workdir))
            .replace("deploy/", f"{tmp_path}/deploy/")
        )
        if "--install" in words:
            words += [] if "--dry-run" in words else ["--dry-run"]
            words += ["--conf-dir", str(tmp_path / "conf.d")]  # any OS, not only Debian's
        done = subprocess.run(
            [sys.executable, "-m", "conveyor", *words[1:]],
            cwd=workdir,
            env={k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        # Then each one works as written ("shop" need not exist to write a file for it)
        assert done.returncode == 0, f"{line}: {done.stderr}"
    assert {p.name for p in (tmp_path / "deploy").iterdir()} >= {
        "conveyor.conf",
        "conveyor.target",
        "docker-compose.conveyor.yml",
        "kubernetes.yaml",
    }
