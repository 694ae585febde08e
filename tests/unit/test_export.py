"""`conveyor export`: every format parses and carries each pool's layout and stop timeout."""

from __future__ import annotations

import configparser
import shlex
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.errors import ConfigError
from conveyor.supervisor.config import Pool, load_pools
from conveyor.supervisor.emit import dump, dump_all
from conveyor.supervisor.export import compose, enable_command, supervisord
from conveyor.supervisor.export import systemd as systemd_units
from conveyor.supervisor.install import config_dir, plan
from conveyor.supervisor.kubernetes import kubernetes, queue_depth_query
from conveyor.supervisor.target import EXIT_RECYCLED, STOP_MARGIN, Target

TARGET = Target(app="shop.jobs:app", program=("/srv/app/.venv/bin/conveyor",), user="app")


@pytest.fixture
def pools(tmp_path: Path) -> list[Pool]:
    env = {
        "QUEUE_MULTI_WORKER": "true",
        "MAIL_WORKER_PROCESSES": "3",
        "MAIL_WORKER_TRIES": "5",
        "EVENTS_WORKER_GRACE_PERIOD": "90",
        "JOBS_WORKER_MEMORY_LIMIT": "512",
        "JOBS_WORKER_QUEUES": "jobs,account-*",
    }
    return load_pools(env, tmp_path).selected()


def _ini(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


def test_supervisord(pools: list[Pool]) -> None:
    ini = _ini(supervisord(pools, TARGET)["conveyor.conf"])
    assert ini["group:conveyor"]["programs"] == "conveyor-jobs,conveyor-mail,conveyor-events"
    mail = ini["program:conveyor-mail"]
    assert mail["numprocs"] == "3" and mail["stopsignal"] == "TERM"
    assert mail["stopwaitsecs"] == str(30 + STOP_MARGIN)
    assert ini["program:conveyor-events"]["stopwaitsecs"] == str(90 + STOP_MARGIN)
    assert 'MAX_RETRIES="4"' in mail["environment"]
    assert shlex.split(ini["program:conveyor-jobs"]["command"]) == [
        "/srv/app/.venv/bin/conveyor",
        "worker",
        "--app",
        "shop.jobs:app",
        "--pool",
        "jobs",
        "--queues",
        "jobs,account-*",
        "--memory-limit",
        "512",
    ]


def _unit(text: str) -> dict[str, dict[str, list[str]]]:
    """A systemd unit file: section -> key -> every value given (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
        elif line and not line.startswith("#"):
            key, _, value = line.partition("=")
            current.setdefault(key, []).append(value)
    return sections


def test_systemd(pools: list[Pool]) -> None:
    files = systemd_units(pools, TARGET)
    assert set(files) == {
        "conveyor.target",
        "conveyor-jobs@.service",
        "conveyor-mail@.service",
        "conveyor-events@.service",
    }
    target = _unit(files["conveyor.target"])
    assert "conveyor-mail@3.service" in target["Unit"]["Wants"][0].split()
    unit = _unit(files["conveyor-events@.service"])
    service = {k: v[-1] for k, v in unit["Service"].items()}
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) > 90
    assert service["Restart"] == "always"
    assert unit["Install"]["WantedBy"] == ["conveyor.target"]
    assert "--grace-period 90" in service["ExecStart"]


def test_compose(pools: list[Pool]) -> None:
    doc = yaml.safe_load(compose(pools, TARGET)["docker-compose.conveyor.yml"])
    mail = doc["services"]["conveyor-mail"]
    assert mail["deploy"]["replicas"] == 3
    assert mail["stop_grace_period"] == f"{30 + STOP_MARGIN}s"
    assert mail["stop_signal"] == "SIGTERM" and mail["init"] is True
    assert mail["command"][:4] == [
        "/srv/app/.venv/bin/conveyor",
        "worker",
        "--app",
        "shop.jobs:app",
    ]
    assert mail["environment"]["MAX_RETRIES"] == "4"
    assert mail["environment"]["CONVEYOR_URL"].startswith("${CONVEYOR_URL")


def test_kubernetes(pools: list[Pool]) -> None:
    docs = list(yaml.safe_load_all(kubernetes(pools, TARGET)["kubernetes.yaml"]))
    kinds = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert ("Deployment", "conveyor-mail") in kinds
    assert ("HorizontalPodAutoscaler", "conveyor-mail") in kinds
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    events = deployments["conveyor-events"]["spec"]["template"]["spec"]
    assert events["terminationGracePeriodSeconds"] > 90
    [container] = events["containers"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": 9184}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 9184}
    url = next(e for e in container["env"] if e["name"] == "CONVEYOR_URL")
    assert url["valueFrom"]["secretKeyRef"] == {"name": "conveyor", "key": "url"}
    jobs = deployments["conveyor-jobs"]["spec"]
    assert "replicas" not in jobs  # the HorizontalPodAutoscaler owns it
    assert jobs["selector"]["matchLabels"] == jobs["template"]["metadata"]["labels"]
    limits = jobs["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
    assert int(limits.removesuffix("Mi")) > 512  # the worker recycles itself first
    hpa = next(d for d in docs if d["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"


@pytest.mark.parametrize(
    "value",
    [
        {"a": "true", "b": "1.5", "c": "30s", "d": "", "e": "a: b", "f": "#x", "g": "yes"},
        {"list": [{"x": 1, "y": [1, 2]}, [], {}, None, True, 2.5, "-1"]},
        {"nested": {"deep": {"deeper": ["a", "b c", "${X:?y}"]}}},
        [{"a": [{"b": 1}]}, 'it\'s "quoted" \\ ünïcode'],
    ],
)
def test_emitted_yaml_round_trips(value: Any) -> None:
    assert yaml.safe_load(dump(value)) == value
    assert list(yaml.safe_load_all(dump_all([{"k": value}, {"k": 2}], "a\nb"))) == [
        {"k": value},
        {"k": 2},
    ]


# -- issue 18: each defect, and what the exports now promise -----------------------------------
def test_supervisord_runs_workers_safely(pools: list[Pool]) -> None:
    # Given the exported supervisord file
    ini = _ini(supervisord(pools, TARGET)["conveyor.conf"])
    mail = ini["program:conveyor-mail"]
    # Then workers run as the given user, signals reach their whole process group, and a
    # worker that recycles within a second is not a failed start (never FATAL)
    assert mail["user"] == "app"
    assert (mail["stopasgroup"], mail["killasgroup"]) == ("true", "true")
    assert mail["startsecs"] == "0" and mail["exitcodes"] == str(EXIT_RECYCLED) == "0"
    # and logs go to supervisord's own log directory, which supervisord creates
    assert mail["stdout_logfile"] == "AUTO"
    # and supervisord refuses the file when CONVEYOR_URL is missing from its environment
    assert mail["environment"].startswith('CONVEYOR_URL="%(ENV_CONVEYOR_URL)s",')


def test_supervisord_log_dir(pools: list[Pool]) -> None:
    text = supervisord(pools, replace(TARGET, log_dir="/var/log/shop"))["conveyor.conf"]
    logfile = _ini(text)["program:conveyor-jobs"]["stdout_logfile"]
    assert logfile == "/var/log/shop/%(program_name)s_%(process_num)02d.log"


def test_systemd_recycles_and_crash_loops_never_stick(pools: list[Pool]) -> None:
    files = systemd_units(pools, TARGET)
    unit = _unit(files["conveyor-jobs@.service"])
    service = unit["Service"]
    # A crash loop never leaves the unit failed for good (no start limit) ...
    assert unit["Unit"]["StartLimitIntervalSec"] == ["0"]
    # ... and clean recycles never wait behind a growing restart back-off.
    assert "RestartSteps" not in service and "RestartMaxDelaySec" not in service
    assert service["SuccessExitStatus"] == ["0"] and service["RestartSec"] == ["1"]
    assert service["User"] == ["app"]
    # The store comes from the environment file; a placeholder makes the worker exit 2
    # naming that file when the file lacks it (the file's values override Environment=).
    assert service["EnvironmentFile"] == ["/etc/conveyor/conveyor.env"]
    assert (
        '"CONVEYOR_URL=missing: put CONVEYOR_URL=... in /etc/conveyor/conveyor.env"'
        in (service["Environment"])
    )
    # The documented enable line enables the target itself, so workers come back at boot.
    enable = enable_command(pools)
    assert enable.startswith("systemctl enable --now conveyor.target ")
    assert f"# Enable: {enable}" in files["conveyor.target"]


def test_systemd_journald_by_default(pools: list[Pool]) -> None:
    text = systemd_units(pools, TARGET)["conveyor-jobs@.service"]
    assert "StandardOutput" not in text and "/var/log" not in text


@pytest.mark.parametrize("workdir", ["/srv/cost$5", "/srv/100%", "/srv/a$b%c d", '/srv/it\'s "x"'])
def test_dollar_and_percent_reach_the_worker(workdir: str) -> None:
    pool = Pool(name="odd")
    target = replace(TARGET, program=(f"{workdir}/bin/conveyor",), workdir=workdir)
    # compose: $$ is a literal $
    doc = yaml.safe_load(compose([pool], target)["docker-compose.conveyor.yml"])
    program = doc["services"]["conveyor-odd"]["command"][0]
    assert program.replace("$$", "$") == f"{workdir}/bin/conveyor"
    # supervisord: %% is a literal %, then the command is split like a shell's
    ini = _ini(supervisord([pool], target)["conveyor.conf"])
    argv = shlex.split(ini["program:conveyor-odd"]["command"].replace("%%", "%"))
    assert argv[0] == f"{workdir}/bin/conveyor"
    assert ini["program:conveyor-odd"]["directory"].replace("%%", "%") == workdir
    # systemd: %% and $$, and double quotes with backslash escapes
    service = _unit(systemd_units([pool], target)["conveyor-odd@.service"])["Service"]
    line = service["ExecStart"][0].replace("%%", "%").replace("$$", "$")
    assert shlex.split(line)[0] == f"{workdir}/bin/conveyor"


@pytest.mark.parametrize("queues", [("cost$5",), ("100%",), ("a b",)])
def test_a_queue_no_job_can_have_is_refused(queues: tuple[str, ...]) -> None:
    for export in (compose, supervisord, systemd_units, kubernetes):
        with pytest.raises(ConfigError, match="no queue or task can be"):
            export([Pool(name="odd", queues=queues)], TARGET)


def test_queue_globs_are_kept() -> None:
    text = supervisord([Pool(name="g", queues=("exports-*", "a?", "[ab]x"))], TARGET)
    assert "--queues 'exports-*,a?,[ab]x'" in text["conveyor.conf"]


def test_a_line_break_in_a_value_is_refused() -> None:
    with pytest.raises(ConfigError, match="no process manager"):
        supervisord([Pool(name="odd")], replace(TARGET, app="a\nb:app"))


def _deployment(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == name)


def test_kubernetes_replicas_only_without_an_autoscaler(pools: list[Pool]) -> None:
    for autoscale, replicas in (("hpa", None), ("keda", None), ("none", 3)):
        files = kubernetes(pools, replace(TARGET, autoscale=autoscale))
        docs = list(yaml.safe_load_all(files["kubernetes.yaml"]))
        assert _deployment(docs, "conveyor-mail")["spec"].get("replicas") == replicas
        assert ("keda.yaml" in files) == (autoscale == "keda")
        has_hpa = any(d["kind"] == "HorizontalPodAutoscaler" for d in docs)
        assert has_hpa == (autoscale == "hpa")


def test_kubernetes_pods(pools: list[Pool]) -> None:
    docs = list(yaml.safe_load_all(kubernetes(pools, TARGET)["kubernetes.yaml"]))
    spec = _deployment(docs, "conveyor-events")["spec"]
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    template = spec["template"]
    assert template["metadata"]["annotations"]["prometheus.io/port"] == "9184"
    assert template["spec"]["terminationGracePeriodSeconds"] == 90 + STOP_MARGIN
    assert template["spec"]["securityContext"]["runAsNonRoot"] is True
    [container] = template["spec"]["containers"]
    assert container["command"][-4:] == ["--metrics-port", "9184", "--metrics-host", "0.0.0.0"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["ports"] == [{"name": "metrics", "containerPort": 9184}]


def test_keda_scales_on_the_pools_ready_jobs(pools: list[Pool]) -> None:
    files = kubernetes(pools, replace(TARGET, autoscale="keda", prometheus="http://prom:9090"))
    objects = {d["metadata"]["name"]: d for d in yaml.safe_load_all(files["keda.yaml"])}
    jobs = objects["conveyor-jobs"]["spec"]
    [trigger] = jobs["triggers"]
    assert trigger["type"] == "prometheus"
    assert trigger["metadata"]["serverAddress"] == "http://prom:9090"
    assert trigger["metadata"]["query"] == (
        'sum(max by (queue, priority) (conveyor_queue_jobs{state="ready",'
        'queue=~"jobs|account\\\\-.*"}))'
    )
    assert jobs["scaleTargetRef"] == {"name": "conveyor-jobs"}
    assert queue_depth_query(Pool(name="all", queues=("*",))) == (
        'sum(max by (queue, priority) (conveyor_queue_jobs{state="ready"}))'
    )
    # A server KEDA cannot query is refused here, not in KEDA's logs after `kubectl apply`
    for url in ("", "prometheus:9090", "http://", "ftp://prom", "http://[::1", "http://a b"):
        with pytest.raises(ConfigError, match="KEDA needs the Prometheus server's http"):
            kubernetes(pools, replace(TARGET, autoscale="keda", prometheus=url))
    # Sets as the worker's fnmatch reads them; Prometheus' engine runs these queries in
    # tests/integration/test_deploy_keda.py
    assert queue_depth_query(Pool(name="s", queues=("shard-[0-2]", "x[!ab]y", "z[z-a]"))) == (
        'sum(max by (queue, priority) (conveyor_queue_jobs{state="ready",'
        'queue=~"shard\\\\-[0-2]|x[^a-b]y|z[^\\\\x{0}-\\\\x{10FFFF}]"}))'
    )


@pytest.mark.parametrize(
    ("os_release", "where"),
    [
        ('ID=debian\nPRETTY_NAME="Debian GNU/Linux 12"', "/etc/supervisor/conf.d/.conf"),
        ("ID=ubuntu\nID_LIKE=debian", "/etc/supervisor/conf.d/.conf"),
        ('ID="rocky"\nID_LIKE="rhel centos fedora"', "/etc/supervisord.d/.ini"),
        ("ID=alpine", "/etc/supervisor.d/.ini"),
    ],
)
def test_install_finds_supervisords_include_dir(os_release: str, where: str) -> None:
    directory, ext = config_dir(os_release, platform="linux")
    assert f"{directory}/{ext}" == where


def test_install_on_an_unknown_system_asks_for_conf_dir() -> None:
    with pytest.raises(ConfigError, match="--conf-dir"):
        config_dir('ID=plan9\nPRETTY_NAME="Plan 9"', platform="linux")


def test_install_on_macos_uses_homebrew(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMEBREW_PREFIX", "/opt/homebrew")
    assert config_dir("", platform="darwin") == (Path("/opt/homebrew/etc/supervisor.d"), ".ini")


def test_install_plan() -> None:
    steps = plan(
        "x", conf_dir=Path("/etc/s"), ctl_config=Path("/c.conf"), log_dir="/var/log/c", user="app"
    )
    assert steps.describe()[:2] == [
        "mkdir -p /var/log/c && chown app /var/log/c",
        "write /etc/s/conveyor.conf",
    ]
    assert steps.describe()[-4:] == [
        "supervisorctl -c /c.conf reread",
        "supervisorctl -c /c.conf update conveyor",
        "supervisorctl -c /c.conf start 'conveyor:*'",
        "supervisorctl -c /c.conf status 'conveyor:*'",
    ]


def test_the_command_flags() -> None:
    from conveyor.cli.export import _program

    assert _program("/srv/v", None, None, local=True) == ("/srv/v/bin/conveyor",)
    assert _program(None, "/usr/bin/python3", None, local=True) == (
        "/usr/bin/python3",
        "-m",
        "conveyor",
    )
    assert _program(None, None, "uv run conveyor", local=True) == ("uv", "run", "conveyor")
    assert _program(None, None, None, local=False) == ("conveyor",)
    with pytest.raises(ConfigError, match="--venv and --python: give one of them"):
        _program("/srv/v", "/usr/bin/python3", None, local=True)


def test_the_default_user_is_the_owner_of_the_app_never_root(tmp_path: Path) -> None:
    import getpass
    import os
    import pwd

    from conveyor.cli.export import _user

    assert _user("shop", str(tmp_path)) == "shop"
    owner = pwd.getpwuid(os.stat(tmp_path).st_uid).pw_name
    me = getpass.getuser()
    expected = next((u for u in (owner, me) if u != "root"), None)
    assert _user(None, str(tmp_path)) == expected
    assert _user(None, str(tmp_path / "elsewhere")) == (None if me == "root" else me)
    if os.geteuid() == 0 and "daemon" in {e.pw_name for e in pwd.getpwall()}:
        # a directory owned by another account names that account
        os.chown(tmp_path, pwd.getpwnam("daemon").pw_uid, -1)
        assert _user(None, str(tmp_path)) == "daemon"


@pytest.mark.parametrize(
    ("files", "name"),
    [
        ("conf.d/*.conf", "conveyor.conf"),
        ("conf.d/*.ini", "conveyor.ini"),
        ("/elsewhere/*.ini conf.d/*.ini", "conveyor.ini"),
        ("other/*.ini", "conveyor.conf"),  # not included at all: --install then says so
    ],
)
def test_install_names_the_file_as_supervisords_include_takes_it(
    tmp_path: Path, files: str, name: str
) -> None:
    conf = tmp_path / "supervisord.conf"
    conf.write_text(f"[supervisord]\nlogfile=%(here)s/x.log\n[include]\nfiles = {files}\n")
    steps = plan("x", conf_dir=tmp_path / "conf.d", ctl_config=conf, log_dir=None, user=None)
    assert steps.path == tmp_path / "conf.d" / name


def _cli(*args: str) -> tuple[int, str]:
    from typer.testing import CliRunner

    from conveyor.cli import app as cli_app

    result = CliRunner().invoke(cli_app, ["export", *args, "--app", "shop.jobs:app"])
    return result.exit_code, " ".join(result.output.split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("supervisord", "--dry-run"), "--dry-run only with --install"),
        (("supervisord", "--conf-dir", "/x"), "--conf-dir only with --install"),
        (("kubernetes", "--user", "shop"), "Kubernetes takes a numeric UID"),
        (("systemd", "--install"), "--install is for supervisord"),
    ],
)
def test_export_refuses_flags_it_would_ignore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    code, output = _cli(*args)
    assert code == 2, output
    assert message in output


def test_an_unwritable_out_dir_is_one_line_about_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, output = _cli("supervisord", "--user", "app", "--out", str(blocker / "d"))
    assert code == 2, output
    assert f"--out {blocker / 'd'}: cannot write" in output
    assert "backend" not in output
