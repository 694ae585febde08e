"""Reading a Django project's ``CONVEYOR`` dict (conveyor.contrib.django.conf), no Django needed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conveyor.contrib.django.conf import ProjectConfig, database_url, read
from conveyor.errors import ConfigError
from conveyor.settings.sources import Layers

POSTGRES = {
    "ENGINE": "django.db.backends.postgresql",
    "NAME": "shop",
    "USER": "web",
    "PASSWORD": "p@ss/word",
    "HOST": "db.internal",
    "PORT": 5433,
    "OPTIONS": {"sslmode": "require"},
}


def test_keys_are_setting_names_with_or_without_the_prefix() -> None:
    config = read(
        {"APP": "shop.jobs:app", "worker_concurrency": 4, "CONVEYOR_WORKER_QUEUES": ["a", "b"]},
        {},
    )
    assert config.app == "shop.jobs:app"
    settings = config.settings(Layers(env={}))
    assert settings.worker_concurrency == 4
    assert settings.worker_queues == ("a", "b")


def test_the_environment_and_dotenv_win_over_the_dict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("MAX_RETRIES=7\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONVEYOR_WORKER_CONCURRENCY", "9")
    config = ProjectConfig(values={"worker_concurrency": 4, "max_retries": 1, "job_timeout": 5})
    settings = config.settings()
    assert (settings.worker_concurrency, settings.max_retries) == (9, 7)
    assert settings.job_timeout == 5


def test_database_names_djangos_database() -> None:
    url = database_url("default", {"default": POSTGRES})
    assert url == "postgresql://web:p%40ss%2Fword@db.internal:5433/shop?sslmode=require"
    socket = {**POSTGRES, "HOST": "/var/run/postgresql", "PASSWORD": "", "OPTIONS": {}}
    assert (
        database_url("default", {"default": socket})
        == "postgresql://web@/shop?host=%2Fvar%2Frun%2Fpostgresql&port=5433"
    )
    sqlite = {"ENGINE": "django.db.backends.sqlite3", "NAME": "/srv/db.sqlite3"}
    assert database_url("default", {"default": sqlite}) == "sqlite:////srv/db.sqlite3"
    config = read({"DATABASE": "default"}, {"default": sqlite})
    assert config.database == "default"
    assert config.values["conveyor_url"] == "sqlite:////srv/db.sqlite3"


@pytest.mark.parametrize(
    ("raw", "databases", "message"),
    [
        (["APP"], {}, "settings.CONVEYOR is a list; make it a dict"),
        ({"WORKER_CONCURENCY": 2}, {}, "did you mean 'WORKER_CONCURRENCY'?"),
        ({"APP": "shop.jobs"}, {}, None),
        ({"APP": 3}, {}, "give where your Conveyor app is"),
        ({"URL": "redis://x", "DATABASE": "default"}, {}, "has both URL and DATABASE"),
        ({"DATABASE": "replica"}, {"default": POSTGRES}, "not in DATABASES (databases: default)"),
        (
            {"DATABASE": "default"},
            {"default": {"ENGINE": "django.db.backends.mysql"}},
            "PostgreSQL or SQLite",
        ),
        (
            {"DATABASE": "default"},
            {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
            "in-memory SQLite",
        ),
    ],
)
def test_a_wrong_dict_is_one_clear_error(
    raw: object, databases: dict[str, dict[str, object]], message: str | None
) -> None:
    if message is None:  # a module without :attribute means its `app`
        assert read(raw, databases).app == "shop.jobs"
        return
    with pytest.raises(ConfigError, match=re.escape(message)):
        read(raw, databases)


def test_a_wrong_value_names_the_dict() -> None:
    with pytest.raises(
        ConfigError,
        match=r"^settings.CONVEYOR: WORKER_CONCURRENCY='many': Input should be a valid integer",
    ):
        ProjectConfig(values={"worker_concurrency": "many"}).settings(Layers(env={}))
