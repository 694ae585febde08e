"""`conveyor export`: every format parses and carries each pool's layout and stop timeout."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.supervisor.config import Pool, load_pools
from conveyor.supervisor.emit import dump, dump_all
from conveyor.supervisor.export import STOP_MARGIN, Target, compose, kubernetes, supervisord
from conveyor.supervisor.export import systemd as systemd_units

TARGET = Target(app="shop.jobs:app", executable="/srv/app/.venv/bin/conveyor")


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


def test_systemd(pools: list[Pool]) -> None:
    files = systemd_units(pools, TARGET)
    assert set(files) == {
        "conveyor.target",
        "conveyor-jobs@.service",
        "conveyor-mail@.service",
        "conveyor-events@.service",
    }
    target = _ini(files["conveyor.target"])
    assert "conveyor-mail@3.service" in target["Unit"]["Wants"].split()
    unit = _ini(files["conveyor-events@.service"])
    service = unit["Service"]
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) > 90
    assert service["Restart"] == "always"
    assert unit["Install"]["WantedBy"] == "conveyor.target"
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
    assert container["livenessProbe"]["exec"]["command"]
    readiness = container["readinessProbe"]["exec"]["command"]
    assert readiness == ["conveyor", "health", "--timeout", "10"]
    url = next(e for e in container["env"] if e["name"] == "CONVEYOR_URL")
    assert url["valueFrom"]["secretKeyRef"] == {"name": "conveyor", "key": "url"}
    jobs = deployments["conveyor-jobs"]["spec"]
    assert jobs["replicas"] == 1
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
