"""Which event loop `conveyor.worker.loops` runs a worker on."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys

import pytest

from conveyor.errors import ConfigError
from conveyor.worker.loops import loop_factory, run


def uvloop_installed() -> bool:
    """Whether uvloop can be imported; under CI it must be (the redis extra brings it)."""
    if importlib.util.find_spec("uvloop") is not None:
        return True
    if os.environ.get("CI"):
        pytest.fail("uvloop is not installed: the redis extra should bring it")
    return False


async def loop_class() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_asyncio_runs_on_the_standard_loop() -> None:
    assert loop_factory("asyncio") == ("asyncio", None)
    assert run(loop_class(), "asyncio").startswith("asyncio")


def test_auto_picks_uvloop_where_it_is_installed() -> None:
    if not uvloop_installed():
        pytest.skip("uvloop is not installed")
    assert loop_factory("auto")[0] == "uvloop"
    assert run(loop_class(), "auto").startswith("uvloop")
    assert run(loop_class(), "uvloop").startswith("uvloop")


def test_without_uvloop_auto_falls_back_and_uvloop_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a Python where uvloop cannot be imported
    monkeypatch.setitem(sys.modules, "uvloop", None)
    # Then auto runs on asyncio's loop, and asking for uvloop says what to do
    assert loop_factory("auto") == ("asyncio", None)
    assert run(loop_class(), "auto").startswith("asyncio")
    with pytest.raises(ConfigError, match=r"uvloop is not installed.*--loop asyncio"):
        loop_factory("uvloop")


def test_an_unknown_loop_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown event loop 'trio': use one of auto"):
        loop_factory("trio")


def test_a_result_and_an_error_come_back_as_from_asyncio_run() -> None:
    async def fails() -> None:
        raise ValueError("boom")

    for name in ("asyncio", "auto"):
        with pytest.raises(ValueError, match="boom"):
            run(fails(), name)
