"""Only CONVEYOR_URL (or a flag, or code) chooses the job store; REDIS_URL is reported.

REDIS_URL is the conventional name of an application's cache: taking jobs there silently
(the behaviour before) put jobs in a store that may evict them. Alone, it is now
a warning that says how to opt in; CONVEYOR_URL always wins.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from conveyor import ConfigError
from conveyor.settings import DEFAULT_URL, ConfigWarning, load_settings

REDIS = "redis://:secret@redis.internal:6379/2"


@pytest.fixture(autouse=True)
def _no_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVEYOR_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)


def test_neither_set_keeps_the_sqlite_default() -> None:
    assert load_settings().conveyor_url == DEFAULT_URL


def test_redis_url_alone_is_not_used_and_says_how_to_opt_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_URL", REDIS)
    with pytest.warns(ConfigWarning, match=r"CONVEYOR_URL=\$\{REDIS_URL\}"):
        assert load_settings().conveyor_url == DEFAULT_URL


def test_conveyor_url_wins_over_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", REDIS)
    monkeypatch.setenv("CONVEYOR_URL", "memory://")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # REDIS_URL is left alone without a word
        assert load_settings().conveyor_url == "memory://"


def test_an_override_wins_over_both(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", REDIS)
    monkeypatch.setenv("CONVEYOR_URL", "memory://")
    assert load_settings(conveyor_url="sqlite:///x.db").conveyor_url == "sqlite:///x.db"


def test_an_override_alone_is_not_warned_about(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", REDIS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_settings(conveyor_url="memory://").conveyor_url == "memory://"


def test_redis_url_from_a_dotenv_file_is_not_used_either(tmp_path: Path) -> None:
    # (the unit conftest made tmp_path the working directory)
    (tmp_path / ".env").write_text(f"REDIS_URL={REDIS}\n")
    with pytest.warns(ConfigWarning, match="REDIS_URL is set"):
        assert load_settings().conveyor_url == DEFAULT_URL


def test_opting_in_through_dotenv_interpolation(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"REDIS_URL={REDIS}\nCONVEYOR_URL=${{REDIS_URL}}\n")
    assert load_settings().conveyor_url == REDIS


def test_a_bad_conveyor_url_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_URL", "localhost:6379")
    with pytest.raises(ConfigError, match=r"CONVEYOR_URL='localhost:6379'"):
        load_settings(strict=True)
