"""Pool settings: environment, conveyor.toml / pyproject.toml, precedence and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.errors import ConfigError
from conveyor.supervisor.config import load_pools


def test_defaults_are_one_pool_for_every_queue(tmp_path: Path) -> None:
    config = load_pools({}, tmp_path)
    assert not config.multi and config.default_pool == "jobs"
    [pool] = config.selected()
    assert pool.name == "jobs" and pool.processes == 1 and pool.queues is None
    assert pool.worker_args() == ["--pool", "jobs"]
    assert pool.worker_env() == {"CONVEYOR_POOL": "jobs"}


def test_multi_worker_runs_one_pool_per_queue_type(tmp_path: Path) -> None:
    env = {"QUEUE_MULTI_WORKER": "true", "REPORTS_WORKER_PROCESSES": "3"}
    pools = {p.name: p for p in load_pools(env, tmp_path).selected()}
    assert list(pools) == ["jobs", "mail", "events", "reports"]
    # The default pool also serves the queue of tasks that name none.
    assert pools["jobs"].queues == ("jobs", "default")
    assert pools["mail"].queues == ("mail",)
    assert pools["reports"].processes == 3


def test_pool_variables_win_over_worker_defaults(tmp_path: Path) -> None:
    env = {
        "WORKER_MAX_JOBS": "1000",
        "WORKER_SLEEP": "2",
        "MAIL_WORKER_MAX_JOBS": "50",
        "MAIL_WORKER_MEMORY_LIMIT": "256",
        "MAIL_WORKER_TIMEOUT": "30",
        "MAIL_WORKER_TRIES": "3",
        "MAIL_WORKER_QUEUES": "mail,notify-*",
        "MAIL_WORKER_PRIORITIES": "high,normal",
    }
    config = load_pools(env, tmp_path)
    mail, events = config.pool("mail"), config.pool("events")
    assert (mail.max_jobs, mail.memory_limit, mail.sleep) == (50, 256, 2.0)
    assert mail.queues == ("mail", "notify-*") and mail.priorities == ("high", "normal")
    assert events.max_jobs == 1000
    assert mail.worker_env() == {
        "CONVEYOR_POOL": "mail",
        "JOB_TIMEOUT": "30",
        "WORKER_TIMEOUT": "30",
        "MAX_RETRIES": "2",
        "WORKER_TRIES": "3",
        # the prefixed names too: a worker reads them first (docs/configuration.md)
        "CONVEYOR_JOB_TIMEOUT": "30",
        "CONVEYOR_WORKER_TIMEOUT": "30",
        "CONVEYOR_MAX_RETRIES": "2",
        "CONVEYOR_WORKER_TRIES": "3",
    }
    assert mail.worker_args() == [
        "--pool",
        "mail",
        "--queues",
        "mail,notify-*",
        "--priorities",
        "high,normal",
        "--max-jobs",
        "50",
        "--memory-limit",
        "256",
        "--sleep",
        "2",
    ]


def test_default_worker_names_the_single_pool(tmp_path: Path) -> None:
    env = {
        "QUEUE_DEFAULT_WORKER": "main",
        "MAIN_WORKER_PROCESSES": "4",
        "MAIN_WORKER_QUEUES": "main",
    }
    [pool] = load_pools(env, tmp_path).resolve(["single"])
    # single serves every queue (WORKER_QUEUES), whatever the pool's own queues are
    assert (pool.name, pool.processes, pool.queues) == ("main", 4, None)


def test_resolve_names_any_pool(tmp_path: Path) -> None:
    config = load_pools({}, tmp_path)
    assert [p.name for p in config.resolve(["mail", "account-sync", "mail"])] == [
        "mail",
        "account-sync",
    ]
    assert config.resolve(["account-sync"])[0].queues == ("account-sync",)
    assert len(config.resolve(["multi"])) == 3


def test_conveyor_toml(tmp_path: Path) -> None:
    (tmp_path / "conveyor.toml").write_text(
        'queue_multi_worker = true\nqueue_default_worker = "mail"\n'
        "[worker]\nmax_jobs = 500\nconcurrency = 20\n"
        '[pools.mail]\nprocesses = 2\nqueues = ["mail", "digest"]\n'
        "[pools.reports]\ngrace_period = 120\n"
    )
    config = load_pools({"MAIL_WORKER_PROCESSES": "5", "WORKER_CONCURRENCY": "8"}, tmp_path)
    pools = {p.name: p for p in config.selected()}
    assert list(pools) == ["jobs", "mail", "events", "reports"]
    # <POOL>_WORKER_X (env) > [pools.x] (file) > WORKER_X (env) > [worker] (file)
    assert pools["mail"].processes == 5
    assert pools["mail"].queues == ("mail", "digest")
    assert pools["jobs"].concurrency == 8 and pools["jobs"].max_jobs == 500
    assert pools["reports"].grace == 120 and pools["jobs"].grace == 30


def test_pyproject_tool_conveyor(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.conveyor.pools.mail]\nprocesses = 3\n'
    )
    assert load_pools({}, tmp_path).pool("mail").processes == 3


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MAIL_WORKER_PROCESSES": "0"}, "MAIL_WORKER_PROCESSES='0': must be a whole number >= 1"),
        ({"WORKER_SLEEP": "soon"}, "WORKER_SLEEP='soon': must be a number of seconds"),
        ({"JOBS_WORKER_PRIORITIES": "urgent"}, "JOBS_WORKER_PRIORITIES='urgent'"),
        ({"QUEUE_MULTI_WORKER": "maybe"}, "QUEUE_MULTI_WORKER='maybe': must be true or false"),
        ({"QUEUE_DEFAULT_WORKER": "Bad Name"}, "QUEUE_DEFAULT_WORKER: pool name 'Bad Name'"),
        ({"STATUS_WORKER_PROCESSES": "1"}, "pool name 'status' is reserved"),
    ],
)
def test_errors_name_the_variable(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_pools(env, tmp_path)


def test_file_errors_name_the_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "conveyor.toml").write_text("[pools.mail]\nprocess = 2\n")
    with pytest.raises(ConfigError, match=r"\[pools.mail\] has an unknown setting 'process'"):
        load_pools({}, tmp_path)
    (tmp_path / "conveyor.toml").write_text("[pools.mail]\nprocesses = -1\n")
    with pytest.raises(ConfigError, match=r"\[pools.mail\] processes in .*conveyor.toml=-1"):
        load_pools({}, tmp_path)
    (tmp_path / "conveyor.toml").write_text("[pools\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_pools({}, tmp_path)


def test_dotenv_is_read_and_real_variables_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("MAIL_WORKER_PROCESSES=2\nMAIL_WORKER_MAX_JOBS=7\n")
    monkeypatch.setenv("MAIL_WORKER_MAX_JOBS", "9")
    mail = load_pools(None, tmp_path).pool("mail")
    assert (mail.processes, mail.max_jobs) == (2, 9)
