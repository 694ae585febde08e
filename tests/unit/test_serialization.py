"""Strict JSON: what goes in, what is refused (with the path named), and corrupt payloads."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conveyor import PayloadTooLarge, SerializationError
from conveyor.serialization import (
    check_json,
    decode_payload,
    decode_value,
    encode_payload,
    encode_value,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(args=st.lists(json_values, max_size=4), kwargs=st.dictionaries(st.text(), json_values))
def test_strict_json_round_trips(args: list[Any], kwargs: dict[str, Any]) -> None:
    assert decode_payload(encode_payload(args, kwargs)) == (args, kwargs)


def test_tuples_become_lists_and_edge_integers_pass() -> None:
    data = encode_payload((1, (2, 3)), {"big": 2**64 - 1, "small": -(2**63), "f": 1.5})
    assert decode_payload(data) == ([1, [2, 3]], {"big": 2**64 - 1, "small": -(2**63), "f": 1.5})


class Thing:
    pass


def _recursive() -> list[Any]:
    loop: list[Any] = [1]
    loop.append(loop)
    return loop


@pytest.mark.parametrize(
    ("args", "kwargs", "path", "words"),
    [
        ((), {"every": timedelta(hours=1)}, "kwargs['every']", "timedelta"),
        ((1, [{1, 2}]), {}, "args[1][0]", "set"),
        ((b"raw",), {}, "args[0]", "bytes"),
        ((math.nan,), {}, "args[0]", "nan"),
        ((), {"x": [1.0, math.inf]}, "kwargs['x'][1]", "inf"),
        ((), {"x": -math.inf}, "kwargs['x']", "-inf"),
        ((Thing(),), {}, "args[0]", "Thing"),
        (({1: "a"},), {}, "args[0]", "key 1 of type int"),
        (({"a": {None: 1}},), {}, "args[0]['a']", "key None"),
        ((2**64,), {}, "args[0]", "too large"),
        ((), {"n": -(2**63) - 1}, "kwargs['n']", "too large"),
        ((_recursive(),), {}, "args[0][1]", "contains itself"),
    ],
)
def test_non_json_is_refused_with_its_path(
    args: tuple[Any, ...], kwargs: dict[str, Any], path: str, words: str
) -> None:
    with pytest.raises(SerializationError) as info:
        encode_payload(args, kwargs)
    message = str(info.value)
    assert message.startswith(path + " "), message
    assert words in message


def test_the_same_list_twice_is_not_recursion() -> None:
    shared = [1, 2]
    assert decode_payload(encode_payload((shared, shared), {})) == ([[1, 2], [1, 2]], {})


def test_very_deep_nesting_is_refused() -> None:
    deep: Any = "x"
    for _ in range(150):
        deep = [deep]
    with pytest.raises(SerializationError, match="nested more than 100 levels"):
        check_json(deep, "args[0]")


def test_too_large_payload_names_the_biggest_argument() -> None:
    with pytest.raises(PayloadTooLarge) as info:
        encode_payload(("small", "x" * 3000), {"note": "y" * 100}, max_bytes=2048)
    message = str(info.value)
    assert "largest: args[1], 3,002 bytes" in message
    assert "2,048-byte limit" in message
    assert "MAX_PAYLOAD_BYTES" in message
    assert isinstance(info.value, SerializationError)


def test_a_large_keyword_argument_is_named_too() -> None:
    with pytest.raises(PayloadTooLarge, match=r"largest: kwargs\['blob'\]"):
        encode_payload((1,), {"blob": ["z" * 100] * 30}, max_bytes=1024)


@pytest.mark.parametrize(
    "data",
    [
        b"{not json",
        b"",
        b"\xff\xfe",
        b"[1, 2]",
        b'{"args": [], "kwargs": []}',
        b'{"args": {}}',
        b'"text"',
        b'{"kwargs": {}}',
    ],
)
def test_corrupt_payloads_raise_serialization_error(data: bytes) -> None:
    with pytest.raises(SerializationError, match="stored payload"):
        decode_payload(data)


def test_values_and_results() -> None:
    assert decode_value(encode_value({"a": [1, None, True]})) == {"a": [1, None, True]}
    with pytest.raises(SerializationError, match=r"^result is a set"):
        encode_value({1})
    with pytest.raises(SerializationError, match=r"^headers\['t'\]"):
        encode_value(math.nan, "headers['t']")
