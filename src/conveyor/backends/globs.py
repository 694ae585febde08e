"""Queue patterns (``mail-*``) read once, then written for each store's own matcher.

A worker's queue pattern means what `fnmatch.fnmatchcase` makes of it, on every store:
``*`` any run of characters, ``?`` one character, ``[set]`` / ``[!set]`` one character in
(or not in) a set of characters and ``a-z`` ranges, a ``[`` without a closing ``]`` taken
literally, and Python 3.11's hyphen rules inside a set (a range running backwards is
dropped). `parse` reads a pattern into `Token` values; `sqlite_glob`, `postgres_regex` and
`lua_pattern` write them for SQLite's ``GLOB``, PostgreSQL's ``~`` and Lua's
``string.find``. ``tests/unit/test_globs.py`` holds each one to fnmatch on the real engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from conveyor.errors import ConfigError

#: The characters that make a queue name a pattern.
GLOB_CHARS = frozenset("*?[")

#: The highest code point; ``[^\x01-MAX]`` is a set no character of a queue name is in.
_MAX = 0x10FFFF


@dataclass(frozen=True, slots=True)
class Literal:
    """One character that matches itself."""

    char: str


@dataclass(frozen=True, slots=True)
class AnyChar:
    """``?``: exactly one character."""


@dataclass(frozen=True, slots=True)
class AnyRun:
    """``*``: any run of characters, the empty one included."""


@dataclass(frozen=True, slots=True)
class CharSet:
    """``[...]``: one character in ``ranges`` (or, when ``negate``, not in them).

    ``ranges`` are inclusive code point pairs, sorted, disjoint and not touching; empty
    means no character (so a negated empty set is any one character).
    """

    ranges: tuple[tuple[int, int], ...]
    negate: bool


Token = Literal | AnyChar | AnyRun | CharSet


def is_pattern(name: str) -> bool:
    """Whether ``name`` holds a wildcard (otherwise it matches only itself)."""
    return not GLOB_CHARS.isdisjoint(name)


@lru_cache(maxsize=512)
def parse(pattern: str) -> tuple[Token, ...]:
    """The tokens of ``pattern``, read the way `fnmatch.translate` reads it."""
    out: list[Token] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            if not out or not isinstance(out[-1], AnyRun):
                out.append(AnyRun())
        elif c == "?":
            out.append(AnyChar())
        elif c == "[":
            end = _set_end(pattern, i)
            if end is None:
                out.append(Literal("["))
            else:
                out.append(_char_set(_set_body(pattern, i, end)))
                i = end + 1
        else:
            out.append(Literal(c))
    return tuple(out)


def _set_end(pattern: str, i: int) -> int | None:
    """The index of the ``]`` closing the set that starts after ``[`` at ``i - 1``."""
    j, n = i, len(pattern)
    if j < n and pattern[j] == "!":
        j += 1
    if j < n and pattern[j] == "]":
        j += 1
    while j < n and pattern[j] != "]":
        j += 1
    return j if j < n else None


def _set_body(pattern: str, i: int, j: int) -> str:
    """The set ``pattern[i:j]`` as the body of a Python regex set, as fnmatch writes it.

    This is fnmatch's own hyphen handling (3.11): a hyphen right after ``[`` or ``[!`` is
    a character, the rest split the body into chunks joined by ranges, and a range running
    backwards is removed with both its ends. Following it exactly keeps its corner cases
    (``[z-a!b]`` reads as ``[!b]``) on every store.
    """
    stuff = pattern[i:j]
    if "-" in stuff:
        chunks = []
        k = i + 2 if pattern[i] == "!" else i + 1
        while True:
            k = pattern.find("-", k, j)
            if k < 0:
                break
            chunks.append(pattern[i:k])
            i = k + 1
            k = k + 3
        chunk = pattern[i:j]
        if chunk:
            chunks.append(chunk)
        else:
            chunks[-1] += "-"
        for k in range(len(chunks) - 1, 0, -1):
            if chunks[k - 1][-1] > chunks[k][0]:
                chunks[k - 1] = chunks[k - 1][:-1] + chunks[k][1:]
                del chunks[k]
        return "-".join(s.replace("\\", "\\\\").replace("-", "\\-") for s in chunks)
    return stuff.replace("\\", "\\\\")


def _char_set(body: str) -> CharSet:
    """Read a regex set body (``\\x`` escapes, ``a-b`` ranges) the way `re` does."""
    negate = body.startswith("!")
    if negate:
        body = body[1:]
    ranges: list[tuple[int, int]] = []
    k, n = 0, len(body)
    while k < n:
        lo, k = _atom(body, k)
        if k + 1 < n and body[k] == "-":
            hi, k = _atom(body, k + 1)
            if lo <= hi:
                ranges.append((lo, hi))
        else:
            ranges.append((lo, lo))
    return CharSet(_merge(ranges), negate)


def _atom(body: str, k: int) -> tuple[int, int]:
    if body[k] == "\\":
        return ord(body[k + 1]), k + 2
    return ord(body[k]), k + 1


def _merge(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(hi, out[-1][1]))
        else:
            out.append((lo, hi))
    return tuple(out)


def _peel(ranges: tuple[tuple[int, int], ...], special: str) -> tuple[list[int], list[str]]:
    """Take the ``special`` characters off the ends of ``ranges``.

    Returns the remaining ranges as a flat ``[lo, hi, lo, hi, ...]`` list and the special
    characters that were members, so a renderer can put those where its set syntax reads
    them literally. One strictly inside a range stays there: the range still covers it.
    """
    codes = {ord(c) for c in special}
    bounds: list[int] = []
    members: list[str] = []
    for first, last in ranges:
        lo, hi = first, last
        while lo <= hi and lo in codes:
            members.append(chr(lo))
            lo += 1
        while lo <= hi and hi in codes:
            members.append(chr(hi))
            hi -= 1
        if lo <= hi:
            bounds += [lo, hi]
    return bounds, members


# -- SQLite GLOB -----------------------------------------------------------------------------
@lru_cache(maxsize=512)
def sqlite_glob(pattern: str) -> str:
    """A pattern for SQLite's ``GLOB`` matching what `fnmatch.fnmatchcase` matches.

    GLOB has no escape character: a literal ``*``, ``?`` or ``[`` is a one-character set.
    Inside a set ``]`` is literal only first, ``-`` only first or last, ``^`` negates only
    first, so those go where they are literal.
    """
    out = []
    for token in parse(pattern):
        if isinstance(token, AnyRun):
            out.append("*")
        elif isinstance(token, AnyChar):
            out.append("?")
        elif isinstance(token, Literal):
            out.append("[" + token.char + "]" if token.char in GLOB_CHARS else token.char)
        else:
            out.append(_sqlite_set(token))
    return "".join(out)


def _sqlite_set(token: CharSet) -> str:
    if not token.ranges:
        return "?" if token.negate else "[^\x01-" + chr(_MAX) + "]"
    bounds, members = _peel(token.ranges, "]-^")
    spans = "".join(_span(bounds[k], bounds[k + 1], "") for k in range(0, len(bounds), 2))
    body = ("]" if "]" in members else "") + spans
    if "^" in members:
        if not body and "-" in members:
            body = "-"  # "-^": a first "-" is literal, and "^" after it is too
            members.remove("-")
        elif not body:
            return "[^^]" if token.negate else "^"
        body += "^"
    if "-" in members:
        body += "-"  # last, before "]", a "-" is literal
    return "[" + ("^" if token.negate else "") + body + "]"


def _span(lo: int, hi: int, escape: str) -> str:
    """``lo`` to ``hi`` in a set, each end after ``escape`` when it is not alphanumeric."""

    def char(code: int) -> str:
        c = chr(code)
        return c if not escape or c.isalnum() else escape + c

    if lo == hi:
        return char(lo)
    if hi == lo + 1:
        return char(lo) + char(hi)
    return char(lo) + "-" + char(hi)


# -- PostgreSQL regular expressions ----------------------------------------------------------
@lru_cache(maxsize=512)
def postgres_regex(pattern: str) -> str:
    """An anchored PostgreSQL regular expression matching what `fnmatch.fnmatchcase` does.

    Python's own `fnmatch.translate` emits syntax PostgreSQL lacks (``(?s:``, ``\\Z``,
    atomic groups). Every character that is not alphanumeric is escaped with a backslash,
    inside a set too, where ARE syntax reads ``\\]``, ``\\-``, ``\\^`` and ``\\[`` literally.
    """
    out = ["^"]
    for token in parse(pattern):
        if isinstance(token, AnyRun):
            out.append(".*")
        elif isinstance(token, AnyChar):
            out.append(".")
        elif isinstance(token, Literal):
            c = token.char
            out.append(c if c.isalnum() or c == "_" else "\\" + c)
        elif not token.ranges:
            out.append("." if token.negate else "[^\x01-" + chr(_MAX) + "]")
        else:
            body = "".join(_span(lo, hi, "\\") for lo, hi in token.ranges)
            out.append("[" + ("^" if token.negate else "") + body + "]")
    out.append("$")
    return "".join(out)


# -- Lua patterns ----------------------------------------------------------------------------
#: Markers `lua_pattern` writes and ``compile`` in the Redis backend's lib.lua expands: one
#: UTF-8 character, and a class matching nothing. ``%`` before a letter other than a Lua
#: class letter never comes out of `lua_pattern` otherwise.
LUA_ANY_CHAR = "%Q"
LUA_NO_CHAR = "%N"


@lru_cache(maxsize=512)
def lua_pattern(pattern: str) -> str:
    """An anchored Lua pattern matching what `fnmatch.fnmatchcase` matches (ASCII sets).

    Lua matches bytes: ``?`` becomes a marker for one UTF-8 character (raw high bytes would
    not survive the trip through JSON), and a set may only hold ASCII characters. Known gap:
    a negated set (``[!a]``) matches one byte, so it does not match a non-ASCII character
    on its own; that needs a marker of its own in lib.lua's ``compile``.
    """
    out = ["^"]
    for token in parse(pattern):
        if isinstance(token, AnyRun):
            out.append(".*")
        elif isinstance(token, AnyChar):
            out.append(LUA_ANY_CHAR)
        elif isinstance(token, Literal):
            out.append("%[" if token.char == "[" else _lua_literal(token.char))
        else:
            out.append(_lua_set(token, pattern))
    out.append("$")
    return "".join(out)


def _lua_literal(c: str) -> str:
    if c == "%":
        return "[%%]"  # never "%%": followed by Q or N it would read as a marker
    if c == "\x00":
        return "%z"
    if c.isascii() and not c.isalnum():
        return "%" + c
    return c


def _lua_set(token: CharSet, pattern: str) -> str:
    if any(hi > 0x7F for _, hi in token.ranges):
        raise ConfigError(
            f"queue pattern {pattern!r}: [...] sets may only hold ASCII characters on Redis"
        )
    members = {chr(o) for lo, hi in token.ranges for o in range(lo, hi + 1)}
    if not members:
        return LUA_ANY_CHAR if token.negate else LUA_NO_CHAR
    # A "%" member goes last, as "%%]", so it cannot run into a letter and form a marker.
    chars = "".join(_lua_literal(ch) for ch in sorted(members - {"%"}))
    if "%" in members:
        chars += "%%"
    return ("[^" if token.negate else "[") + chars + "]"
