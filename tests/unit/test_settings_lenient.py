"""Settings inside someone else's program: never an error at import, one precedence.

Variables meant for other programs (``LOG_LEVEL=WARN``, ``JOB_TIMEOUT=30s``) are read the
way people write them, or skipped with a warning; ``CONVEYOR_*`` names always win; typos
get a "did you mean"; ``REDIS_URL`` never chooses the job store; the settings file is read
by every command, the worker included.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import ConfigError, Conveyor
from conveyor.settings import DEFAULT_URL, ConfigWarning, Settings, load_settings
from conveyor.settings.names import POOL_KEYS
from conveyor.supervisor.config import load_pools
from conveyor.supervisor.pool_keys import KEYS
from conveyor.worker import Worker


@pytest.fixture(autouse=True)
def _no_prefixed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``CONVEYOR_*`` setting of the developer's leaks in (the unit conftest clears
    the unprefixed names and makes tmp_path the working directory)."""
    for name in Settings.model_fields:
        monkeypatch.delenv("CONVEYOR_" + name.upper(), raising=False)
    monkeypatch.delenv("CONVEYOR_URL", raising=False)
    monkeypatch.delenv("CONVEYOR_URI", raising=False)


def quiet_load(**overrides: object) -> Settings:
    """`load_settings`, failing the test on any warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return load_settings(**overrides)


# -- spellings other programs use ----------------------------------------------------------
@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    [
        ("LOG_LEVEL", "WARN", "log_level", "warning"),
        ("LOG_LEVEL", "TRACE", "log_level", "debug"),
        ("LOG_LEVEL", "fatal", "log_level", "critical"),
        ("LOG_LEVEL", "30", "log_level", "warning"),
        ("ALERT_LEVEL", "Warn", "alert_level", "warning"),
        ("LOG_FORMAT", "console", "log_format", "text"),
        ("LOG_FORMAT", "JSONL", "log_format", "json"),
        ("JOB_TIMEOUT", "30s", "job_timeout", 30.0),
        ("JOB_TIMEOUT", "5m", "job_timeout", 300.0),
        ("JOB_TIMEOUT", "1h30m", "job_timeout", 5400.0),
        ("SCHEDULER_INTERVAL", "500ms", "scheduler_interval", 0.5),
        ("SCHEDULER_INTERVAL", "1s", "scheduler_interval", 1.0),
        ("WORKER_MAX_TIME", "1h", "worker_max_time", 3600.0),
        ("RESULT_TTL", "1d", "result_ttl", 86_400.0),
        ("CONVEYOR_LEASE_SECONDS", "2m", "lease_seconds", 120.0),
        ("HISTORY_HOURS", "90m", "history_hours", 1.5),
        ("WORKER_MEMORY_LIMIT", "1GB", "worker_memory_limit", 1024),
        ("MAX_PAYLOAD_BYTES", "2MB", "max_payload_bytes", 2 * 1024 * 1024),
        ("ALERT_WAIT_QUEUES", "mail=1m,reports-*=2h", "alert_wait_queues", None),
    ],
)
def test_common_spellings_are_read(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str, expected: object
) -> None:
    monkeypatch.setenv(variable, value)
    got = getattr(quiet_load(), field)
    if field == "alert_wait_queues":
        assert got == {"mail": 60.0, "reports-*": 7200.0}
    else:
        assert got == expected


def test_a_duration_flag_or_keyword_accepts_units_too() -> None:
    assert quiet_load(job_timeout="45s", worker_grace_period="1m").worker_grace_period == 60.0


# -- a value Conveyor cannot use: a warning at import, an error at start -------------------
@pytest.fixture
def jobs_module(tmp_path: Path) -> Iterator[str]:
    """An app module, as a user's project has one: ``app = Conveyor()`` at import."""
    (tmp_path / "myjobs_lenient.py").write_text("from conveyor import Conveyor\napp = Conveyor()\n")
    sys.path.insert(0, str(tmp_path))
    yield "myjobs_lenient"
    sys.path.remove(str(tmp_path))
    sys.modules.pop("myjobs_lenient", None)


def test_an_unusable_variable_never_breaks_the_import(
    jobs_module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a LOG_LEVEL meant for another program, which Conveyor cannot read
    monkeypatch.setenv("LOG_LEVEL", "verbose-ish")
    # When the user's module is imported, it is imported, with a warning naming the variable
    with pytest.warns(ConfigWarning, match=r"LOG_LEVEL='verbose-ish'.*CONVEYOR_LOG_LEVEL"):
        module = __import__(jobs_module)
    settings = module.app.settings
    # Then the default is used, and the problem is kept for commands and workers
    assert settings.log_level == "info"
    assert any("LOG_LEVEL='verbose-ish'" in p for p in settings.problems())
    with pytest.raises(ConfigError, match=r"LOG_LEVEL='verbose-ish'.*debug, info"):
        settings.raise_problems()


def test_a_bad_line_in_the_apps_dotenv_is_a_warning_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DEBUG=1\nJOB_TIMEOUT=soon\n")
    with pytest.warns(ConfigWarning, match=r"JOB_TIMEOUT='soon' \(in .*\.env, line 2\)"):
        settings = Conveyor("memory://").settings
    assert settings.job_timeout == 300.0
    with pytest.raises(ConfigError, match="is not a duration"):
        settings.raise_problems()


def test_strict_loading_is_an_error_without_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_CONCURRENCY", "lots")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ConfigError, match=r"WORKER_CONCURRENCY='lots'.*valid integer"):
            load_settings(strict=True)


def test_a_skipped_value_gives_way_to_the_next_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_WORKER_CONCURRENCY", "0")
    monkeypatch.setenv("WORKER_CONCURRENCY", "3")
    with pytest.warns(ConfigWarning, match="CONVEYOR_WORKER_CONCURRENCY='0'"):
        settings = load_settings()
    assert settings.worker_concurrency == 3
    assert str(settings.origin("worker_concurrency")) == "env WORKER_CONCURRENCY"


def test_settings_that_contradict_each_other_are_skipped_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WORKER_MODE", "specialized")  # needs WORKER_PRIORITIES
    monkeypatch.setenv("LOG_CHANNEL", "slack")  # needs LOG_SLACK_WEBHOOK_URL
    with pytest.warns(ConfigWarning) as caught:
        settings = load_settings()
    assert (settings.worker_mode, settings.log_channel) == (None, "stderr")
    text = " ".join(str(w.message) for w in caught)
    assert "WORKER_PRIORITIES is not set" in text and "LOG_SLACK_WEBHOOK_URL" in text
    assert len(settings.problems()) == 2


def test_a_wrong_keyword_from_code_or_a_flag_is_still_an_error() -> None:
    with pytest.raises(ConfigError, match=r"WORKER_CONCURRENCY=0"):
        load_settings(worker_concurrency=0)


# -- CONVEYOR_* names always win -----------------------------------------------------------
def test_prefixed_names_win_over_the_seeds_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a shell whose LOG_FORMAT belongs to another program, and Conveyor's own value
    monkeypatch.setenv("LOG_FORMAT", "logfmt")
    monkeypatch.setenv("LOG_LEVEL", "error")
    (tmp_path / ".env").write_text("CONVEYOR_LOG_FORMAT=json\nCONVEYOR_LOG_LEVEL=debug\n")
    # When the settings are read, Conveyor's names win, even from .env, with no complaint
    settings = quiet_load()
    assert (settings.log_format, settings.log_level) == ("json", "debug")
    assert settings.problems() == ()
    assert str(settings.origin("log_level")) == ".env CONVEYOR_LOG_LEVEL (line 2)"


# -- typos ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("variable", "meant"),
    [
        ("CONVEYOR_URI", "CONVEYOR_URL"),
        ("CONVEYOR_WORKER_CONCURENCY", "CONVEYOR_WORKER_CONCURRENCY"),
        ("WORKER_CONCURENCY", "WORKER_CONCURRENCY"),
        ("JOB_TIMOUT", "JOB_TIMEOUT"),
    ],
)
def test_a_typo_gets_a_did_you_mean(
    monkeypatch: pytest.MonkeyPatch, variable: str, meant: str
) -> None:
    monkeypatch.setenv(variable, "3")
    with pytest.warns(ConfigWarning, match=f"{variable} is not .* did you mean {meant}\\?"):
        settings = load_settings()
    assert settings.problems() == ()  # a notice, never a reason to refuse to start


def test_other_programs_variables_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "LOG_FILE",
        "LOG_DIR",
        "JOB_NAME",
        "QUEUE_NAME",
        "WORKER_ID",
        "WORKER_CLASS",
        "MAIL_WORKER_MAX_JOBS",
        "CONVEYOR_MAIL_WORKER_TRIES",
        "CONVEYOR_TEST_REDIS_URL",
        "CONVEYOR_APP",
        "CONVEYOR_DASHBOARD_TOKEN",
        "WORKER_PROCESSES",
    ):
        monkeypatch.setenv(name, "1")
    assert quiet_load().notices() == ()


# -- the job store -------------------------------------------------------------------------
def test_redis_url_alone_does_not_choose_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given REDIS_URL set for the application's cache
    monkeypatch.setenv("REDIS_URL", "redis://:secret@cache.internal:6379/2")
    # Then jobs do not go there, and a warning says how to opt in, without the password
    with pytest.warns(ConfigWarning, match=r"REDIS_URL is set.*CONVEYOR_URL") as caught:
        settings = load_settings()
    assert settings.conveyor_url == DEFAULT_URL
    assert "secret" not in str(caught[0].message)
    # With CONVEYOR_URL set, REDIS_URL is somebody else's business
    monkeypatch.setenv("CONVEYOR_URL", "memory://")
    assert quiet_load().conveyor_url == "memory://"


# -- the settings file, and one precedence for every command ---------------------------------
def test_file_settings_and_the_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.conveyor]\nlog_level = "warning"\n\n'
        '[tool.conveyor.worker]\nconcurrency = 4\nsleep = "2s"\ntimeout = "2m"\ntries = 3\n'
    )
    settings = quiet_load()
    assert (settings.worker_concurrency, settings.worker_sleep) == (4, 2.0)
    assert (settings.worker_timeout, settings.job_timeout) == (120.0, 120.0)
    assert (settings.worker_tries, settings.max_retries) == (3, 2)
    assert settings.log_level == "warning"
    assert str(settings.origin("worker_concurrency")).startswith("pyproject.toml [tool.conveyor")
    # .env beats the file, the environment beats .env, a flag beats everything
    (tmp_path / ".env").write_text("WORKER_CONCURRENCY=5\n")
    assert quiet_load().worker_concurrency == 5
    monkeypatch.setenv("WORKER_CONCURRENCY", "6")
    assert quiet_load().worker_concurrency == 6
    assert quiet_load(worker_concurrency=7).worker_concurrency == 7


def test_the_worker_reads_the_file_like_export_does(tmp_path: Path) -> None:
    (tmp_path / "conveyor.toml").write_text("[worker]\nconcurrency = 4\nmode = 'thin'\n")
    # `conveyor export` and `conveyor run` read the pool from the file ...
    assert load_pools().single().concurrency == 4
    # ... and so does a worker of an app that reads its settings at import
    worker = Worker(Conveyor("memory://"))
    assert worker.concurrency == 4
    assert worker.app.settings.worker_mode == "thin"


def test_a_typo_in_the_file_gets_a_did_you_mean(tmp_path: Path) -> None:
    (tmp_path / "conveyor.toml").write_text("job_timout = 5\n[worker]\nconcurency = 4\n")
    with pytest.warns(ConfigWarning) as caught:
        load_settings()
    text = " ".join(str(w.message) for w in caught)
    assert "did you mean job_timeout?" in text and "did you mean concurrency?" in text


def test_a_broken_settings_file_never_breaks_the_import(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.conveyor\n")
    with pytest.warns(ConfigWarning, match="is not valid TOML"):
        settings = load_settings()
    with pytest.raises(ConfigError, match="is not valid TOML"):
        settings.raise_problems()


# -- conveyor run's pools follow the same rules ----------------------------------------------
def test_pools_read_prefixed_names_and_durations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_MAX_JOBS", "5")
    monkeypatch.setenv("CONVEYOR_WORKER_MAX_JOBS", "9")
    monkeypatch.setenv("WORKER_MAX_TIME", "1h")
    monkeypatch.setenv("CONVEYOR_MAIL_WORKER_MEMORY_LIMIT", "1GB")
    pools = load_pools()
    assert "conveyor" not in pools.known  # CONVEYOR_WORKER_* is not a pool's variable
    jobs, mail = pools.pool("jobs"), pools.pool("mail")
    assert (jobs.max_jobs, jobs.max_time) == (9, 3600.0)
    assert mail.memory_limit == 1024


def test_a_pools_job_defaults_win_in_its_workers() -> None:
    pools = load_pools(env={"MAIL_WORKER_TIMEOUT": "30", "MAIL_WORKER_TRIES": "3"})
    env = pools.pool("mail").worker_env()
    # A worker reads CONVEYOR_* first, so the pool's values come in that name too
    assert (env["CONVEYOR_JOB_TIMEOUT"], env["CONVEYOR_MAX_RETRIES"]) == ("30", "2")


def test_the_names_module_knows_every_pool_key() -> None:
    assert tuple(KEYS) == POOL_KEYS


def test_reading_the_settings_again_warns_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A command reads the settings more than once (the app, then its flags): one warning.
    monkeypatch.setenv("LOG_LEVEL", "loud")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        load_settings()
        load_settings(worker_concurrency=2)
        Conveyor("memory://")
    assert len([w for w in caught if issubclass(w.category, ConfigWarning)]) == 1
