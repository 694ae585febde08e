"""Multi-channel logging: files, stderr, stack, null, formats, context, report()."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from logging.handlers import TimedRotatingFileHandler
from pathlib import Path
from typing import Any

import pytest

from conveyor.errors import ConfigError
from conveyor.logs import configure_logging, log, report, reset_logging
from conveyor.settings import Settings, load_settings


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    reset_logging()
    root.setLevel(level)


def settings(tmp_path: Path, **kw: Any) -> Settings:
    return load_settings(log_path=str(tmp_path / "logs" / "conveyor.log"), **kw)


def read(tmp_path: Path) -> str:
    return (tmp_path / "logs" / "conveyor.log").read_text()


def boom() -> ValueError:
    try:
        raise ValueError("bad input")
    except ValueError as exc:
        return exc


def test_single_writes_context_as_key_value_and_other_libraries_lines(tmp_path: Path) -> None:
    # Given the single channel
    configure_logging(settings(tmp_path, log_channel="single"))
    # When our log and another library's logger write
    log.info("charged", user=42, note="two words")
    logging.getLogger("thirdparty.http").warning("retrying %s", "GET")
    reset_logging()
    # Then both lines are in the file, context as key=value
    text = read(tmp_path)
    assert 'INFO    conveyor: charged user=42 note="two words"' in text
    assert "WARNING thirdparty.http: retrying GET" in text


def test_log_level_is_the_threshold(tmp_path: Path) -> None:
    configure_logging(settings(tmp_path, log_channel="single", log_level="WARNING"))
    log.info("hidden")
    log.debug("hidden too")
    log.warning("shown")
    log.channel("single").info("hidden on a named channel too")
    reset_logging()
    text = read(tmp_path)
    assert "shown" in text
    assert "hidden" not in text


def test_json_lines_carry_context_as_fields(tmp_path: Path) -> None:
    configure_logging(settings(tmp_path, log_channel="single", log_format="json"))
    log.error("card declined", user=42, amount="9.99", level="ignored: base fields win")
    logging.getLogger("lib").info("plain")
    reset_logging()
    first, second = (json.loads(line) for line in read(tmp_path).splitlines())
    assert first["message"] == "card declined"
    assert first["level"] == "error"
    assert first["logger"] == "conveyor"
    assert first["user"] == 42
    assert first["amount"] == "9.99"
    assert second == {"time": second["time"], "level": "info", "logger": "lib", "message": "plain"}


def test_report_includes_the_traceback(tmp_path: Path) -> None:
    configure_logging(settings(tmp_path, log_channel="single"))
    report(boom(), job="j1")
    report(boom(), level="critical")
    reset_logging()
    text = read(tmp_path)
    assert "ERROR   conveyor: ValueError: bad input job=j1" in text
    assert "CRITICAL conveyor: ValueError: bad input" in text
    assert text.count("Traceback (most recent call last)") == 2
    assert 'raise ValueError("bad input")' in text


def test_report_in_json_has_the_exception_field(tmp_path: Path) -> None:
    configure_logging(settings(tmp_path, log_channel="single", log_format="json"))
    report(boom())
    reset_logging()
    line = json.loads(read(tmp_path))
    assert line["message"] == "ValueError: bad input"
    assert "Traceback" in line["exception"]


def test_report_to_named_channels(tmp_path: Path) -> None:
    # Given the default channel is null
    configure_logging(settings(tmp_path, log_channel="null"))
    # When an exception is reported to the single channel
    report(boom(), "single", level="warning")
    reset_logging()
    # Then it is in the file with its traceback
    text = read(tmp_path)
    assert "WARNING conveyor: ValueError: bad input" in text
    assert "Traceback" in text


def test_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(settings(tmp_path, log_channel="stderr"))
    log.error("boom", job="j1")
    assert "ERROR   conveyor: boom job=j1" in capsys.readouterr().err


def test_null_swallows_everything(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(settings(tmp_path, log_channel="null"))
    log.critical("nobody hears this")
    report(boom())
    reset_logging()
    assert "nobody" not in capsys.readouterr().err
    assert not (tmp_path / "logs" / "conveyor.log").exists()


def test_stack_sends_each_line_to_every_channel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(settings(tmp_path, log_channel="stack", log_stack="single,stderr"))
    log.warning("both", n=1)
    reset_logging()
    assert "both n=1" in read(tmp_path)
    assert "both n=1" in capsys.readouterr().err


def test_channel_and_stack_pick_channels_per_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the default channel is stderr
    configure_logging(settings(tmp_path, log_channel="stderr", log_stack="single"))
    # When lines go to named channels
    log.channel("single").info("file only")
    log.stack("single", "stderr").info("both")
    log.stack("stack", "single").info("once")  # stack holds single: one line, not two
    reset_logging()
    # Then each reaches exactly the channels named
    err = capsys.readouterr().err
    text = read(tmp_path)
    assert "file only" in text
    assert "file only" not in err
    assert "both" in text
    assert "both" in err
    assert text.count("once") == 1


def test_daily_rotates_and_keeps_log_days_files(tmp_path: Path) -> None:
    # Given five old daily files and LOG_DAYS=2
    folder = tmp_path / "logs"
    folder.mkdir()
    for day in range(1, 6):
        (folder / f"conveyor.log.2020-01-0{day}").write_text("old\n")
    configure_logging(settings(tmp_path, log_channel="daily", log_days=2))
    handler = next(
        h for h in logging.getLogger().handlers if isinstance(h, TimedRotatingFileHandler)
    )
    log.info("today")
    # When the day turns
    handler.doRollover()
    log.info("tomorrow")
    reset_logging()
    # Then the current file is fresh, and only the two newest old files are kept
    assert "tomorrow" in read(tmp_path)
    backups = sorted(p.name for p in folder.iterdir() if p.name != "conveyor.log")
    assert len(backups) == 2
    assert "conveyor.log.2020-01-05" in backups
    rolled = [
        p
        for p in folder.iterdir()
        if not p.name.startswith(("conveyor.log.2020",)) and p.name != "conveyor.log"
    ]
    assert "today" in rolled[0].read_text()


def test_configure_is_idempotent(tmp_path: Path) -> None:
    root = logging.getLogger()
    before = len(root.handlers)
    configure_logging(settings(tmp_path, log_channel="single"))
    configure_logging(settings(tmp_path, log_channel="single"))
    assert len(root.handlers) == before + 1
    log.info("once")
    reset_logging()
    assert read(tmp_path).count("once") == 1
    assert len(root.handlers) == before


def test_unknown_channel_names_are_clear_errors(tmp_path: Path) -> None:
    configure_logging(settings(tmp_path, log_channel="null"))
    with pytest.raises(ConfigError, match=r"'slak' is not a log channel: use one of single"):
        log.channel("slak")
    with pytest.raises(ConfigError, match="'nope' is not a log channel"):
        log.stack("single", "nope")
    with pytest.raises(ConfigError, match="'nope' is not a log channel"):
        report(boom(), "nope")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"log_channel": "slak"}, "LOG_CHANNEL='slak' is not a log channel: use one of single"),
        ({"log_channel": "stack"}, "LOG_CHANNEL=stack needs LOG_STACK"),
        ({"log_channel": "stack", "log_stack": "single,nope"}, "LOG_STACK names 'nope'"),
        ({"log_channel": "slack"}, "needs LOG_SLACK_WEBHOOK_URL"),
        ({"log_channel": "stack", "log_stack": "sentry"}, "needs SENTRY_DSN"),
        ({"log_level": "loud"}, "LOG_LEVEL='loud'"),
    ],
)
def test_settings_reject_unusable_log_channels(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(**env)


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_CHANNEL", "Stack")
    monkeypatch.setenv("LOG_STACK", "single, slack")
    monkeypatch.setenv("LOG_SLACK_WEBHOOK_URL", "https://hooks.example/T0/B0/secret")
    s = load_settings()
    assert s.log_channel == "stack"
    assert s.log_stack == ("single", "slack")
    assert "secret" not in repr(s)  # the webhook is a secret
