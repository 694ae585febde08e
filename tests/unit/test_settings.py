"""Settings: defaults, environment, .env file, lists, overrides, and errors that explain."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor import ConfigError, Priority
from conveyor.settings import DEFAULT_URL, load_settings


def test_defaults() -> None:
    s = load_settings()
    assert s.conveyor_url == DEFAULT_URL
    assert s.worker_concurrency == 10
    assert (s.worker_queues, s.worker_priorities, s.worker_job_types) == (None, None, None)
    assert (s.job_timeout, s.max_retries, s.lease_seconds) == (300.0, 3, 30.0)
    assert s.max_payload_bytes == 1024 * 1024
    assert s.enable_reaper is True


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_URL", "memory://")
    monkeypatch.setenv("WORKER_CONCURRENCY", "4")
    monkeypatch.setenv("JOB_TIMEOUT", "2.5")
    monkeypatch.setenv("ENABLE_REAPER", "false")
    monkeypatch.setenv("worker_max_jobs", "100")  # names are case-insensitive
    s = load_settings()
    assert s.conveyor_url == "memory://"
    assert s.worker_concurrency == 4
    assert s.job_timeout == 2.5
    assert s.enable_reaper is False
    assert s.worker_max_jobs == 100


def test_dotenv_file_in_the_working_directory(tmp_path: Path) -> None:
    # (the autouse fixture made tmp_path the working directory)
    (tmp_path / ".env").write_text("WORKER_CONCURRENCY=7\nWORKER_QUEUES=mail\n")
    s = load_settings()
    assert (s.worker_concurrency, s.worker_queues) == (7, ("mail",))


def test_environment_beats_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("WORKER_CONCURRENCY=7\n")
    monkeypatch.setenv("WORKER_CONCURRENCY", "3")
    assert load_settings().worker_concurrency == 3


def test_comma_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_QUEUES", " jobs, mail ,, account-* ")
    monkeypatch.setenv("WORKER_JOB_TYPES", "app.send_email")
    s = load_settings()
    assert s.worker_queues == ("jobs", "mail", "account-*")
    assert s.worker_job_types == ("app.send_email",)


def test_an_empty_list_means_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_QUEUES", " , ")
    monkeypatch.setenv("WORKER_PRIORITIES", "")
    s = load_settings()
    assert (s.worker_queues, s.worker_priorities) == (None, None)


def test_priorities_parse_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_PRIORITIES", "High, low")
    assert load_settings().worker_priorities == (Priority.HIGH, Priority.LOW)
    assert load_settings(worker_priorities=["normal"]).worker_priorities == (Priority.NORMAL,)


def test_overrides_win_and_none_keeps_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_CONCURRENCY", "4")
    monkeypatch.setenv("MAX_RETRIES", "9")
    s = load_settings(worker_concurrency=2, max_retries=None)
    assert (s.worker_concurrency, s.max_retries) == (2, 9)


@pytest.mark.parametrize(
    ("variable", "value", "accepted"),
    [
        ("WORKER_CONCURRENCY", "zero", "valid integer"),
        ("WORKER_CONCURRENCY", "0", "greater than or equal to 1"),
        ("WORKER_PRIORITIES", "high,urgent", "'high', 'normal' or 'low'"),
        ("JOB_TIMEOUT", "-1", "greater than 0"),
        ("MAX_RETRIES", "-2", "greater than or equal to 0"),
        ("CONVEYOR_URL", "conveyor.db", "memory://, sqlite:///path.db"),
        ("ENABLE_REAPER", "maybe", "valid boolean"),
        ("MAX_PAYLOAD_BYTES", "10", "greater than or equal to 1024"),
    ],
)
def test_invalid_values_name_the_variable_and_what_is_accepted(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, accepted: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings(strict=True)  # (without strict: skipped with a warning)
    message = str(info.value)
    assert f"{variable}={value!r}" in message
    assert accepted in message


def test_an_invalid_override_is_explained_too() -> None:
    with pytest.raises(ConfigError, match=r"WORKER_CONCURRENCY=0: .*jobs run at once"):
        load_settings(worker_concurrency=0)
