"""``conveyor dashboard``: it refuses to expose itself without authentication."""

from __future__ import annotations

import socket

from typer.testing import CliRunner

from conveyor.cli import app as cli

runner = CliRunner()


def test_public_host_without_auth_is_refused_with_exit_code_2() -> None:
    result = runner.invoke(cli, ["dashboard", "--url", "memory://", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "without authentication" in result.output
    assert "CONVEYOR_DASHBOARD_TOKEN" in result.output


def test_port_in_use_is_exit_code_2() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(cli, ["dashboard", "--url", "memory://", "--port", str(port)])
    assert result.exit_code == 2
    assert "in use" in result.output


def test_help_lists_the_options() -> None:
    result = runner.invoke(cli, ["dashboard", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--token", "--password", "--read-only", "--app"):
        assert option in result.output
