"""The configuration page documents every variable Conveyor reads.

A variable the settings code reads but the page does not name is one a user meets only in
a warning. The names come from the code itself (the `Settings` fields, the supervisor's and
the CLI's own lists, and every ``CONVEYOR_*`` or ``SENTRY_*`` name written in the source),
so a new setting without a line in ``docs/configuration.md`` fails here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from conveyor.settings import Settings
from conveyor.settings.names import (
    OTHER_CONVEYOR_NAMES,
    PREFIX,
    SUPERVISOR_NAMES,
    URL_VARIABLE,
    seed_names,
)

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "configuration.md"
SOURCE = ROOT / "src" / "conveyor"
#: A whole variable name in the source: ``CONVEYOR_X`` or ``SENTRY_X`` (not a prefix).
_NAME = re.compile(r"^(CONVEYOR|SENTRY)_[A-Z0-9_]*[A-Z0-9]$")


def documented(name: str, text: str) -> bool:
    """``name`` appears in ``text`` as a whole word (``LOG_LEVEL`` is not ``LOG_LEVEL_X``)."""
    return re.search(rf"(?<![A-Z0-9_]){re.escape(name)}(?![A-Z0-9_])", text) is not None


def names_in_source() -> set[str]:
    """Every string constant in ``src/conveyor`` that is a whole variable name."""
    found: set[str] = set()
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            value = node.value if isinstance(node, ast.Constant) else None
            if isinstance(value, str) and _NAME.match(value):
                found.add(value)
    return {name for name in found if not name.startswith("CONVEYOR_TEST_")}


def test_the_settings_read_are_found_in_the_source() -> None:
    # The scan below must see what the settings module reads, or it proves nothing.
    found = names_in_source()
    assert {"CONVEYOR_APP", "CONVEYOR_DEBUG_TOKEN", "SENTRY_TRACES_SAMPLE_RATE"} <= found
    assert set(OTHER_CONVEYOR_NAMES) <= found


@pytest.mark.parametrize(
    "name",
    sorted(seed_names(Settings.model_fields) | {URL_VARIABLE, *OTHER_CONVEYOR_NAMES}),
)
def test_every_variable_the_settings_read_is_documented(name: str) -> None:
    # Each setting's unprefixed (seed) name, the supervisor's names, CONVEYOR_URL and the
    # CONVEYOR_* names the CLI reads: each has its own mention on the page.
    assert documented(name, PAGE.read_text()), f"{name} is not in docs/configuration.md"


def test_every_variable_named_in_the_source_is_documented() -> None:
    text = PAGE.read_text()
    missing = []
    for name in sorted(names_in_source()):
        # CONVEYOR_<SETTING> is documented through <SETTING> ("may also be written ...")
        bare = name.removeprefix(PREFIX)
        if not (documented(name, text) or (bare != name and documented(bare, text))):
            missing.append(name)
    assert missing == [], f"not in docs/configuration.md: {missing}"


def test_the_page_says_prefixed_names_work_for_each_setting() -> None:
    # The table lists seed names; the sentence that makes CONVEYOR_<NAME> valid must stay.
    text = PAGE.read_text()
    assert "may also be written `CONVEYOR_<NAME>`, which wins" in text
    assert set(SUPERVISOR_NAMES) <= seed_names(Settings.model_fields)


def test_the_page_states_the_precedence_and_conveyor_config() -> None:
    text = PAGE.read_text()
    sources = text.split("## Where settings come from", 1)[1].split("\n## ", 1)[0]
    # flag or code, CONVEYOR_<NAME>, <NAME>, the settings file, the default: in that order
    order = ["--concurrency 8", "CONVEYOR_<NAME>", "`<NAME>`", "conveyor.toml", "the default"]
    positions = [sources.find(word) for word in order]
    assert -1 not in positions and positions == sorted(positions), positions
    assert "## `conveyor config`" in text
    assert "conveyor worker`, `conveyor run`, `conveyor export`" in sources


def test_the_logging_page_shows_the_app_owned_case() -> None:
    text = (ROOT / "docs" / "logging.md").read_text()
    section = text.split("## Your app's logging comes first", 1)[1].split("\n## ", 1)[0]
    assert "logging.basicConfig(" in section
    assert "LOG_CONFIG" in section or "--log-config" in section
