"""REDIS_URL picks the backend when CONVEYOR_URL is not set; CONVEYOR_URL always wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor import ConfigError
from conveyor.settings import DEFAULT_URL, load_settings

REDIS = "redis://:secret@redis.internal:6379/2"


@pytest.fixture(autouse=True)
def _no_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVEYOR_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)


def test_neither_set_keeps_the_sqlite_default() -> None:
    assert load_settings().conveyor_url == DEFAULT_URL


def test_redis_url_is_used_when_conveyor_url_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", REDIS)
    assert load_settings().conveyor_url == REDIS


def test_conveyor_url_wins_over_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", REDIS)
    monkeypatch.setenv("CONVEYOR_URL", "memory://")
    assert load_settings().conveyor_url == "memory://"


def test_an_override_wins_over_both(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", REDIS)
    monkeypatch.setenv("CONVEYOR_URL", "memory://")
    assert load_settings(conveyor_url="sqlite:///x.db").conveyor_url == "sqlite:///x.db"


def test_redis_url_from_a_dotenv_file(tmp_path: Path) -> None:
    # (the unit conftest made tmp_path the working directory)
    (tmp_path / ".env").write_text(f"REDIS_URL={REDIS}\n")
    assert load_settings().conveyor_url == REDIS


def test_a_bad_redis_url_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "localhost:6379")
    with pytest.raises(ConfigError, match=r"(?i)redis_url"):
        load_settings()
