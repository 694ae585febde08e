"""Queue patterns mean what `fnmatch.fnmatchcase` says, on every store's own matcher.

`conveyor.backends.globs` reads a pattern once and writes it for SQLite's GLOB, PostgreSQL's
``~`` and Lua's ``string.find``. Hypothesis draws patterns and names from a small alphabet
heavy in the characters that are special somewhere (``[]!^-*?%\\``) and checks each
rendering on the real engine: an in-memory sqlite3, and the dev PostgreSQL and Redis
servers (skipped locally when they are not running, failed under CI).
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from fnmatch import fnmatchcase
from importlib.resources import files
from typing import Any

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from conveyor.backends import globs
from conveyor.errors import ConfigError

PATTERN_CHARS = "ab-z[]!^*?%.\\: é€Q"
NAME_CHARS = "ab-z[]!^*?%.\\: é€Q"

patterns = st.text(PATTERN_CHARS, max_size=9)
names = st.lists(st.text(NAME_CHARS, max_size=6), min_size=1, max_size=12)

#: Patterns whose corner cases are worth running every time, whatever Hypothesis draws.
CORNERS = [
    "[",
    "a[",
    "[]",
    "[]]",
    "[!]]",
    "[!]",
    "[]-a]",
    "[^a]",
    "[^]",
    "[!^]",
    "[z-a]",
    "[z-a!b]",
    "[z-a!-c]",
    "[a--b]",
    "[--0]",
    "[a-]",
    "[!-a]",
    "[a-b-c]",
    "[[:]",
    "[a[=]",
    "[\\]",
    "[%a]",
    "[!%]",
    "*[!a]?",
    "a*b*c",
    "[é]",
    "[!é]",
    "x[[]1]",
]


def expected(pattern: str, candidates: list[str]) -> list[bool]:
    return [fnmatchcase(name, pattern) for name in candidates]


def server(env: str) -> str:
    url = os.environ.get(env)
    if url:
        return url
    if os.environ.get("CI"):
        pytest.fail(f"{env} is not set (scripts/test.sh sets it)")
    pytest.skip(f"{env} is not set (scripts/test.sh sets it)")


# -- the tokens themselves -------------------------------------------------------------------
def python_regex(pattern: str) -> str:
    """The tokens as a Python regex: checks `parse` alone, with no other engine involved."""
    out = []
    for token in globs.parse(pattern):
        if isinstance(token, globs.AnyRun):
            out.append(".*")
        elif isinstance(token, globs.AnyChar):
            out.append(".")
        elif isinstance(token, globs.Literal):
            out.append(re.escape(token.char))
        else:
            body = "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in token.ranges)
            if not body:
                out.append("." if token.negate else "(?!)")
            else:
                out.append("[" + ("^" if token.negate else "") + body + "]")
    return "".join(out)


@given(patterns, names)
@example("[z-a!b]", ["b", "c", "!"])
@example("[z-a!-c]", ["-", "c", "b", "!"])
@settings(max_examples=500)
def test_parse_reads_patterns_as_fnmatch_does(pattern: str, candidates: list[str]) -> None:
    regex = re.compile(python_regex(pattern), re.DOTALL)
    got = [regex.fullmatch(name) is not None for name in candidates]
    assert got == expected(pattern, candidates), (pattern, regex.pattern)


def test_a_star_run_is_one_token() -> None:
    assert globs.parse("a**b") == (globs.Literal("a"), globs.AnyRun(), globs.Literal("b"))


# -- SQLite GLOB ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sqlite() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:")
    yield conn
    conn.close()


def sqlite_matches(conn: sqlite3.Connection, pattern: str, candidates: list[str]) -> list[bool]:
    glob = globs.sqlite_glob(pattern)
    return [bool(conn.execute("SELECT ? GLOB ?", (n, glob)).fetchone()[0]) for n in candidates]


@given(patterns, names)
@settings(max_examples=500, deadline=None)
def test_sqlite_glob_matches_as_fnmatch_does(
    sqlite: sqlite3.Connection, pattern: str, candidates: list[str]
) -> None:
    got = sqlite_matches(sqlite, pattern, candidates)
    assert got == expected(pattern, candidates), (pattern, globs.sqlite_glob(pattern))


@pytest.mark.parametrize("pattern", CORNERS)
def test_sqlite_glob_corner_cases(sqlite: sqlite3.Connection, pattern: str) -> None:
    candidates = sorted(set(NAME_CHARS) | {"", "ab", "[]", "x[1]"})
    assert sqlite_matches(sqlite, pattern, candidates) == expected(pattern, candidates)


# -- PostgreSQL regular expressions -----------------------------------------------------------
@pytest.fixture(scope="module")
def postgres() -> Iterator[Any]:
    psycopg = pytest.importorskip("psycopg")
    with psycopg.connect(server("CONVEYOR_TEST_POSTGRES_URL"), autocommit=True) as conn:
        yield conn


def postgres_matches(conn: Any, pattern: str, candidates: list[str]) -> list[bool]:
    rows = conn.execute(
        "SELECT n ~ %s FROM unnest(%s::text[]) WITH ORDINALITY AS t(n, i) ORDER BY i",
        (globs.postgres_regex(pattern), candidates),
    ).fetchall()
    return [row[0] for row in rows]


@given(patterns, names)
@settings(max_examples=300, deadline=None)
def test_postgres_regex_matches_as_fnmatch_does(
    postgres: Any, pattern: str, candidates: list[str]
) -> None:
    got = postgres_matches(postgres, pattern, candidates)
    assert got == expected(pattern, candidates), (pattern, globs.postgres_regex(pattern))


@pytest.mark.parametrize("pattern", CORNERS)
def test_postgres_regex_corner_cases(postgres: Any, pattern: str) -> None:
    candidates = sorted(set(NAME_CHARS) | {"", "ab", "[]", "x[1]"})
    assert postgres_matches(postgres, pattern, candidates) == expected(pattern, candidates)


# -- Lua patterns, through the scripts' own compile and matches ------------------------------
#: lib.lua (what every routing script starts with), then a body that routes each name in
#: ARGV[4..] with the routing JSON in ARGV[3], exactly as claim and wait do.
LUA_MATCH = "\n".join(
    [
        files("conveyor.backends.redis").joinpath("lib.lua").read_text(encoding="utf-8"),
        "local r = compile(cjson.decode(ARGV[3]))",
        "local out = {}",
        "for i = 4, #ARGV do out[#out + 1] = matches(r, 1, ARGV[i], 't') and 1 or 0 end",
        "return out",
    ]
)


@pytest.fixture(scope="module")
def redis() -> Iterator[Any]:
    redis_mod = pytest.importorskip("redis")
    client = redis_mod.Redis.from_url(server("CONVEYOR_TEST_REDIS_URL"))
    yield client
    client.close()


def lua_matches(client: Any, pattern: str, candidates: list[str]) -> list[bool]:
    from conveyor.backends.redis.keys import routing_json
    from conveyor.job import Routing

    spec = routing_json(Routing(queues=(pattern,)))
    got = client.eval(LUA_MATCH, 0, "{test}:", "1", spec, *candidates)
    return [bool(x) for x in got]


def lua_supports(pattern: str, candidates: list[str]) -> bool:
    """Outside what Lua's byte matching can do: sets of non-ASCII characters (refused with
    ConfigError), and a negated set standing for a non-ASCII character."""
    tokens = globs.parse(pattern)
    negated = any(isinstance(t, globs.CharSet) and t.negate for t in tokens)
    try:
        globs.lua_pattern(pattern)
    except ConfigError:
        return False
    return not (negated and any(not name.isascii() for name in candidates))


@given(patterns, names)
@settings(max_examples=300, deadline=None)
def test_lua_pattern_matches_as_fnmatch_does(
    redis: Any, pattern: str, candidates: list[str]
) -> None:
    assume(lua_supports(pattern, candidates))
    got = lua_matches(redis, pattern, candidates)
    assert got == expected(pattern, candidates), (pattern, globs.lua_pattern(pattern))


@pytest.mark.parametrize("pattern", CORNERS)
def test_lua_pattern_corner_cases(redis: Any, pattern: str) -> None:
    candidates = sorted(set(NAME_CHARS) | {"", "ab", "[]", "x[1]"})
    if not lua_supports(pattern, candidates):
        candidates = [name for name in candidates if name.isascii()]
    if not lua_supports(pattern, candidates):
        with pytest.raises(ConfigError, match="ASCII"):
            globs.lua_pattern(pattern)
        return
    assert lua_matches(redis, pattern, candidates) == expected(pattern, candidates)
