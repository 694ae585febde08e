"""Where a backend URL is shown (repr, errors, `status`, worker command lines), no password."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator

import pytest

from conveyor import Conveyor
from conveyor.cli.run import app_for_workers
from conveyor.cli.status import Snapshot, status_json
from conveyor.errors import ConfigError
from conveyor.settings import load_settings
from conveyor.supervisor.child import url_env, worker_command
from conveyor.supervisor.config import Pool

URL = "redis://:p@ss@w0rd@cache.internal:6379/0?sentinel_password=hunter2&db=1"
SECRETS = ("p@ss", "w0rd", "hunter2")


def shows_no_secret(text: str) -> bool:
    return not any(secret in text for secret in SECRETS)


def test_repr_of_app_and_settings_hides_the_password() -> None:
    app = Conveyor(URL)
    assert shows_no_secret(repr(app)) and "cache.internal" in repr(app)
    assert shows_no_secret(repr(app.settings)) and "cache.internal" in repr(app.settings)
    assert shows_no_secret(str(app.settings))


def test_a_mistyped_url_is_not_echoed_with_its_password() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(conveyor_url="redis:/:hunter2@cache.internal:6379/0")
    message = str(caught.value)
    assert "CONVEYOR_URL" in message and "cache.internal" in message
    assert "hunter2" not in message


@pytest.mark.parametrize(
    "url", ["redis://user:pa55/w0rd@cache.internal:6379/0", "redis://:pa55?w0rd@cache.internal"]
)
def test_a_password_cut_short_by_a_slash_is_not_quoted_as_a_port(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(conveyor_url=url)
    assert "pa55" not in str(caught.value) and "w0rd" not in str(caught.value)


def test_status_json_hides_query_secrets() -> None:
    doc = status_json(URL, Snapshot([], {}, []))
    assert shows_no_secret(doc["url"]) and "db=1" in doc["url"]


def test_worker_command_line_never_holds_the_url() -> None:
    command = worker_command(Pool("jobs"), "app:app", None)
    assert shows_no_secret(" ".join(command)) and "--url" not in command
    assert url_env(URL) == {"CONVEYOR_URL": URL}
    assert url_env(None) == {}


@pytest.fixture
def hardcoded_app() -> Iterator[str]:
    module = types.ModuleType("hardcoded_url_app")
    module.app = Conveyor("sqlite:///somewhere-else.db")  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    try:
        yield f"{module.__name__}:app"
    finally:
        del sys.modules[module.__name__]


def test_run_refuses_url_an_app_would_ignore(
    hardcoded_app: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an app that names its own URL in code (so it never reads CONVEYOR_URL)
    monkeypatch.setenv("CONVEYOR_URL", "memory://")
    # When `conveyor run --url` is asked to point its workers elsewhere
    with pytest.raises(ConfigError) as caught:
        app_for_workers(hardcoded_app, URL)
    # Then it says why, rather than start workers on another store, and leaks nothing
    assert "CONVEYOR_URL" in str(caught.value) and shows_no_secret(str(caught.value))
    # Without --url the app's own URL is used as it is
    assert app_for_workers(hardcoded_app, None).url == "sqlite:///somewhere-else.db"


@pytest.mark.parametrize("kind", ["supervisord", "systemd", "compose", "kubernetes"])
def test_export_never_writes_the_url(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from conveyor.cli import app as cli

    # Given the backend URL, with its password, in the environment `export` runs in
    monkeypatch.setenv("CONVEYOR_URL", URL)
    result = CliRunner().invoke(cli, ["export", kind, "--app", "myproject.jobs:app"])
    # Then the files read it from the environment (or a Secret) at run time instead
    assert result.exit_code == 0, result.output
    assert shows_no_secret(result.output) and "cache.internal" not in result.output
    assert "CONVEYOR_URL" in result.output


def test_backend_errors_and_targets_hide_the_password() -> None:
    from conveyor.backends import create_backend
    from conveyor.backends.postgres.connection import parse_url

    target = parse_url("postgresql://app:hunter2@db.internal/jobs?pool_size=4")
    assert "hunter2" not in repr(target) and "db.internal" not in repr(target)
    for url, text in [
        ("postgresql://app:hunter2@db.internal/jobs?pool_size=0", "pool_size"),
        ("nosuch://app:hunter2@host/x", "unknown backend scheme"),
        ("app:hunter2@host", "has no scheme"),
    ]:
        with pytest.raises(ConfigError) as info:
            create_backend(url)
        assert text in str(info.value) and "hunter2" not in str(info.value), info.value


def test_the_redis_target_hides_the_password() -> None:
    from conveyor.backends.redis.keys import parse_url

    target = parse_url("redis://:hunter2@cache.internal:6379/0?prefix=x")
    assert "hunter2" not in repr(target) and "cache.internal" in repr(target)
