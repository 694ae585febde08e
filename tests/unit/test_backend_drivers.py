"""A built-in store whose driver is missing says which extra to install; a missing module
of Conveyor's own is not blamed on the driver."""

from __future__ import annotations

import sys

import pytest

from conveyor.backends import create_backend
from conveyor.errors import ConfigError


def _forget_postgres_store(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in sys.modules if n.startswith("conveyor.backends.postgres")]:
        monkeypatch.delitem(sys.modules, name)


def test_a_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given psycopg cannot be imported
    _forget_postgres_store(monkeypatch)
    monkeypatch.setitem(sys.modules, "psycopg", None)
    # Then building a postgresql:// store says what to install
    with pytest.raises(ConfigError, match=r"needs psycopg 3.*pip install 'conveyor\[postgres\]'"):
        create_backend("postgresql://127.0.0.1/x")


def test_a_missing_module_of_conveyor_is_not_blamed_on_the_driver(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given one of the store's own modules is missing (a broken install)
    _forget_postgres_store(monkeypatch)
    monkeypatch.setitem(sys.modules, "conveyor.backends.postgres.sql", None)
    # Then the import error itself comes through, not "pip install conveyor[postgres]"
    with pytest.raises(ImportError) as raised:
        create_backend("postgresql://127.0.0.1/x")
    assert not isinstance(raised.value, ConfigError)
    assert "conveyor.backends.postgres.sql" in str(raised.value)
