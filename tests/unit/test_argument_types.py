"""Everyday values (datetime, date, time, UUID, Decimal) carried through JSON, tagged.

They go in as arguments or results and come back as the same types, offsets and digits
intact; payloads stored before tags existed decode as they always did; a user's own object
that looks like a tag comes back unchanged; headers stay strict JSON.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conveyor import Conveyor, SerializationError, State, Worker
from conveyor.serialization import (
    check_json,
    decode_payload,
    decode_payload_json,
    decode_value,
    decode_value_json,
    encode_payload,
    encode_value,
    untag,
)
from conveyor.testing import eager

IST = timezone(timedelta(hours=5, minutes=30))
WHEN = datetime(2030, 1, 2, 9, 30, 15, 123456, tzinfo=IST)
ID = UUID("6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f")

everyday = (
    st.datetimes(timezones=st.none() | st.timezones())
    | st.dates()
    | st.times()
    | st.uuids()
    | st.decimals(allow_nan=False)
)
reserved_keys = st.sampled_from(["$datetime", "$date", "$time", "$uuid", "$decimal", "$dict"])
values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.text(max_size=12) | everyday,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(reserved_keys | st.text(max_size=6), children, max_size=2)
    ),
    max_leaves=12,
)


def _same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down (1 == Decimal(1), but not the same)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, datetime | time):
        # The same wall time and offset (`==` across zones is False inside a DST fold).
        same_offset = a.utcoffset() == b.utcoffset()
        naive = (a.tzinfo is None) is (b.tzinfo is None)
        return a.replace(tzinfo=None) == b.replace(tzinfo=None) and same_offset and naive
    if isinstance(a, Decimal):
        return str(a) == str(b)  # keeps its digits: Decimal("1.10") is not Decimal("1.1")
    return bool(a == b)


@given(args=st.lists(values, max_size=3), kwargs=st.dictionaries(st.text(max_size=6), values))
def test_arguments_come_back_as_the_types_they_were_sent_as(
    args: list[Any], kwargs: dict[str, Any]
) -> None:
    got_args, got_kwargs = decode_payload(encode_payload(args, kwargs))
    assert _same(got_args, args) and _same(got_kwargs, kwargs)


@given(value=values)
def test_results_round_trip_the_same_way(value: Any) -> None:
    assert _same(decode_value(encode_value(value)), value)


def test_each_type_is_stored_as_a_readable_tag() -> None:
    # The stored format is pinned: other processes and older jobs depend on it.
    data = encode_payload(
        (WHEN, date(2030, 1, 2), time(9, 30)), {"id": ID, "price": Decimal("19.90")}
    )
    assert orjson.loads(data) == {
        "args": [
            {"$datetime": "2030-01-02T09:30:15.123456+05:30"},
            {"$date": "2030-01-02"},
            {"$time": "09:30:00"},
        ],
        "kwargs": {"id": {"$uuid": str(ID)}, "price": {"$decimal": "19.90"}},
    }
    # And the JSON view (for the CLI and the dashboard) shows exactly that.
    assert decode_payload_json(data) == (orjson.loads(data)["args"], orjson.loads(data)["kwargs"])


def test_an_aware_datetime_keeps_its_offset_and_a_naive_one_stays_naive() -> None:
    paris = datetime(2030, 7, 1, 12, tzinfo=ZoneInfo("Europe/Paris"))
    (aware, naive, zoned, utc), _ = decode_payload(
        encode_payload(
            [WHEN, datetime(2030, 1, 2, 9, 30), paris, datetime(2030, 1, 1, tzinfo=UTC)], {}
        )
    )
    assert aware == WHEN and aware.utcoffset() == timedelta(hours=5, minutes=30)
    assert aware.microsecond == 123456
    assert naive == datetime(2030, 1, 2, 9, 30) and naive.tzinfo is None
    # A zone becomes its offset at that moment: the same instant, the same wall time.
    assert zoned == paris and zoned.utcoffset() == timedelta(hours=2) and zoned.hour == 12
    assert utc.tzinfo is UTC


def test_decimals_keep_every_digit() -> None:
    sent = [Decimal("0.1"), Decimal("1.10"), Decimal("1E+2"), Decimal("-0"), Decimal("3" * 40)]
    got, _ = decode_payload(encode_payload(sent, {}))
    assert [str(d) for d in got] == [str(d) for d in sent]
    assert all(type(d) is Decimal for d in got)


def test_a_users_object_that_looks_like_a_tag_comes_back_unchanged() -> None:
    # Given dicts a user might pass (MongoDB's extended JSON uses "$date")
    sent = [{"$date": "2030-01-01"}, {"$dict": {"a": 1}}, {"$decimal": 5}, {"$uuid": "x", "b": 2}]
    # When they are stored and read back
    got, _ = decode_payload(encode_payload(sent, {}))
    # Then they are the same dicts, not values
    assert got == sent


def test_payloads_stored_before_tags_still_decode() -> None:
    old = b'{"args": [1, "2030-01-01", {"a": [true, null]}], "kwargs": {"price": "$5"}}'
    assert decode_payload(old) == ([1, "2030-01-01", {"a": [True, None]}], {"price": "$5"})
    # A tag-like object whose text is not a value of that type stays the object it was.
    odd = b'{"args": [{"$date": "soon"}, {"$decimal": "x"}, {"$uuid": 7}], "kwargs": {}}'
    assert decode_payload(odd) == ([{"$date": "soon"}, {"$decimal": "x"}, {"$uuid": 7}], {})
    assert decode_value(b'{"$time": "noon"}') == {"$time": "noon"}


def test_untag_reads_tags_written_by_hand() -> None:
    # What `conveyor enqueue --kwargs '{"when": {"$datetime": ...}}'` can pass on.
    assert untag({"when": {"$datetime": "2030-01-01T00:00:00+00:00"}}) == {
        "when": datetime(2030, 1, 1, tzinfo=UTC)
    }


def test_the_json_view_of_a_result_keeps_its_tags() -> None:
    data = encode_value({"at": date(2030, 1, 1)})
    assert decode_value_json(data) == {"at": {"$date": "2030-01-01"}}
    assert decode_value(data) == {"at": date(2030, 1, 1)}


@pytest.mark.parametrize(
    ("value", "words"),
    [({1, 2}, "set"), (b"raw", "bytes"), (timedelta(1), "timedelta"), (1j, "complex")],
)
def test_other_types_are_still_refused_naming_what_may_go_in(value: object, words: str) -> None:
    with pytest.raises(SerializationError) as info:
        encode_payload((), {"x": [value]})
    message = str(info.value)
    assert message.startswith(f"kwargs['x'][0] is a {words}")
    assert "datetime, date, time, UUID, Decimal" in message


def test_headers_stay_strict_json() -> None:
    with pytest.raises(
        SerializationError, match=r"^headers\['at'\] is a datetime, which is not JSON"
    ):
        check_json(WHEN, "headers['at']")


def _tagged_task(app: Conveyor, seen: list[Any]) -> Any:
    @app.task(name="book")
    def book(when: datetime, day: date, at: time, ref: UUID, *, price: Decimal) -> dict[str, Any]:
        seen.append((when, day, at, ref, price))
        return {"when": when, "price": price * 2}

    return book


async def test_a_worker_hands_the_task_the_types_and_keeps_the_result(app: Conveyor) -> None:
    # Given a task whose arguments are everyday values
    seen: list[Any] = []
    book = _tagged_task(app, seen)
    job = book.enqueue(WHEN, date(2030, 1, 2), time(9, 30), ID, price=Decimal("19.90"))
    # When a worker runs it
    assert await Worker(app, burst=True, concurrency=1, reaper=False).run() == 0
    # Then the task got those types, and the result reads back as them too
    assert _same(seen, [(WHEN, date(2030, 1, 2), time(9, 30), ID, Decimal("19.90"))])
    assert (await job.info_async()).state is State.SUCCEEDED
    assert _same(await job.result_async(timeout=1), {"when": WHEN, "price": Decimal("39.80")})


def test_eager_mode_hands_the_task_the_same_types(app: Conveyor) -> None:
    seen: list[Any] = []
    book = _tagged_task(app, seen)
    with eager(app):
        book.enqueue(WHEN, date(2030, 1, 2), time(9, 30), ID, price=Decimal("1.5"))
    assert _same(seen, [(WHEN, date(2030, 1, 2), time(9, 30), ID, Decimal("1.5"))])
