"""Bad input at the call site: non-finite times, oversized headers, keys and results,
names with control characters, and text that is not valid Unicode.

Each is refused where it is enqueued (or, for a result, settles its job as dead), with an
error naming the option or argument, the value and the limit.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest

from conveyor import Conveyor, PayloadTooLarge, SerializationError, State
from conveyor.errors import ConfigError, InvalidOption
from conveyor.serialization import (
    MAX_HEADERS_BYTES,
    MAX_NAME_CHARS,
    MAX_RESULT_BYTES,
    MAX_UNIQUE_KEY_BYTES,
    encode_value,
)
from conveyor.testing import eager

BIG = 20 * 1024 * 1024  # the 20 MB that used to be accepted
NOT_FINITE = [math.inf, -math.inf, math.nan]


def _work(app: Conveyor) -> Any:
    @app.task(name="work")
    def work(x: int = 0) -> None: ...

    return work


# -- 1. delay, run_at, timeout -------------------------------------------------------------
@pytest.mark.parametrize("value", NOT_FINITE)
@pytest.mark.parametrize("option", ["delay", "run_at", "timeout"])
def test_non_finite_times_are_refused_by_options(app: Conveyor, option: str, value: float) -> None:
    work = _work(app)
    with pytest.raises(ValueError, match=rf"{option}=-?(inf|nan)") as caught:
        work.options(**{option: value}).enqueue(1)
    assert isinstance(caught.value, InvalidOption) and isinstance(caught.value, ConfigError)
    assert not _stored(app)


@pytest.mark.parametrize("option", ["delay", "run_at", "timeout"])
def test_non_finite_times_are_refused_on_a_bound_task_and_in_bulk(
    app: Conveyor, option: str
) -> None:
    work = _work(app)
    bound = work.options(priority="low")
    with pytest.raises(InvalidOption, match=f"{option}=inf"):
        bound.options(**{option: math.inf})
    with pytest.raises(InvalidOption, match=f"{option}=nan"):
        app.enqueue_many([work.call(1), work.options(**{option: math.nan}).call(2)])
    assert not _stored(app)


def test_nan_in_a_hand_built_call_is_refused_by_app_enqueue(app: Conveyor) -> None:
    from conveyor.task import CallOptions, JobSpec

    work = _work(app)
    with pytest.raises(InvalidOption, match="delay=nan"):
        app.enqueue_many([JobSpec(work, (1,), {}, CallOptions(delay=math.nan))])
    assert not _stored(app)
    work.enqueue_many([(1,)])
    assert len(_stored(app)) == 1


@pytest.mark.parametrize("value", [*NOT_FINITE, -1.0, 0])
def test_task_timeout_must_be_finite_and_positive(app: Conveyor, value: float) -> None:
    with pytest.raises(ValueError, match="timeout="):

        @app.task(timeout=value)
        def slow() -> None: ...


@pytest.mark.parametrize("value", [math.nan, 1.5, True, "3"])
def test_retries_must_be_a_whole_number(app: Conveyor, value: Any) -> None:
    work = _work(app)
    with pytest.raises(InvalidOption, match="retries="):
        work.options(retries=value)


def test_negative_timeout_and_delay_are_refused(app: Conveyor) -> None:
    work = _work(app)
    with pytest.raises(InvalidOption, match=r"timeout=-5"):
        work.options(timeout=-5).enqueue()
    with pytest.raises(InvalidOption, match=r"delay=-1 is negative"):
        work.options(delay=-1).enqueue()


def test_a_run_time_past_year_9999_is_refused(app: Conveyor) -> None:
    work = _work(app)
    with pytest.raises(InvalidOption, match="9999-12-31"):
        work.options(delay=1e300).enqueue()
    with pytest.raises(InvalidOption, match="9999-12-31"):
        work.options(run_at=1e300).enqueue()
    when = datetime(9999, 12, 31, 12, tzinfo=UTC)
    assert work.options(run_at=when).enqueue().state() is State.SCHEDULED


# -- 2. sizes, names, header keys, surrogates -----------------------------------------------
def test_headers_over_the_limit_are_refused_naming_the_largest(app: Conveyor) -> None:
    work = _work(app)
    with pytest.raises(PayloadTooLarge) as caught:
        work.options(headers={"tenant": "acme", "blob": "x" * BIG}).enqueue()
    message = str(caught.value)
    assert f"{MAX_HEADERS_BYTES:,}-byte limit" in message
    assert "headers['blob']" in message and "pass data as an argument" in message
    assert len(message) < 400  # the value is named, not printed
    assert not _stored(app)


def test_headers_just_under_the_limit_pass(app: Conveyor) -> None:
    work = _work(app)
    handle = work.options(headers={"note": "x" * (MAX_HEADERS_BYTES - 100)}).enqueue()
    assert handle.info().headers["note"].startswith("xxx")


@pytest.mark.parametrize("key", [1, None, ("a", "b"), 2.5])
def test_header_names_must_be_strings(app: Conveyor, key: Any) -> None:
    work = _work(app)
    with pytest.raises(SerializationError, match="header names must be str"):
        work.options(headers={key: "v"}).enqueue()


def test_unique_keys_over_the_limit_are_refused(app: Conveyor) -> None:
    work = _work(app)
    with pytest.raises(InvalidOption, match=f"{MAX_UNIQUE_KEY_BYTES:,}-byte limit") as caught:
        work.options(unique_key="k" * BIG).enqueue()
    assert "hash" in str(caught.value) and len(str(caught.value)) < 400

    @app.task(name="keyed", unique_key=lambda n: "k" * n)
    def keyed(n: int) -> None: ...

    assert keyed.enqueue(MAX_UNIQUE_KEY_BYTES).id
    with pytest.raises(InvalidOption, match="unique_key="):
        keyed.enqueue(MAX_UNIQUE_KEY_BYTES + 1)


def test_a_unique_key_function_must_return_a_string(app: Conveyor) -> None:
    @app.task(name="keyed", unique_key=lambda n: n)
    def keyed(n: int) -> None: ...

    with pytest.raises(InvalidOption, match="unique_key=7 is a int"):
        keyed.enqueue(7)


@pytest.mark.parametrize("name", ["mail\n", "mail\r", "ma\til", "m\x00", "m\x7f", " mail", "é"])
def test_queue_names_with_control_characters_are_refused(app: Conveyor, name: str) -> None:
    work = _work(app)
    with pytest.raises(ConfigError, match="queue name"):
        work.options(queue=name)
    with pytest.raises(ConfigError, match="queue name"):

        @app.task(name="other", queue=name)
        def other() -> None: ...


def test_queue_name_length_is_capped(app: Conveyor) -> None:
    work = _work(app)
    assert work.options(queue="q" * MAX_NAME_CHARS).enqueue().id
    with pytest.raises(ConfigError, match=f"1 to {MAX_NAME_CHARS} characters") as caught:
        work.options(queue="q" * (MAX_NAME_CHARS + 1))
    assert len(str(caught.value)) < 300  # the name is clipped


@pytest.mark.parametrize(
    ("call", "path"),
    [
        ((("\ud800",), {}), r"args\[0\]"),
        ((([1, {"k": "ok\udfff"}],), {}), r"args\[0\]\[1\]\['k'\]"),
        (((), {"x": "\ud800"}), r"kwargs\['x'\]"),
        ((({"\ud800": 1},), {}), r"args\[0\] key"),
    ],
)
def test_a_lone_surrogate_is_a_serialization_error_naming_its_path(
    app: Conveyor, call: tuple[tuple[Any, ...], dict[str, Any]], path: str
) -> None:
    @app.task(name="echo")
    def echo(*args: Any, **kwargs: Any) -> None: ...

    args, kwargs = call
    with pytest.raises(SerializationError, match=path) as caught:
        echo.enqueue(*args, **kwargs)
    assert "lone surrogate" in str(caught.value)


def test_a_lone_surrogate_in_a_header_is_refused(app: Conveyor) -> None:
    work = _work(app)
    with pytest.raises(SerializationError, match=r"headers\['tag'\]"):
        work.options(headers={"tag": "\udc80"}).enqueue()


def test_valid_non_ascii_text_still_passes(app: Conveyor) -> None:
    @app.task(name="greet")
    def greet(name: str) -> None: ...

    job = greet.options(headers={"lang": "日本語"}, unique_key="ключ").enqueue("Zoë 🎉")
    assert job.info().unique_key == "ключ"


# -- results ---------------------------------------------------------------------------------
def test_encode_value_refuses_a_result_over_the_limit() -> None:
    with pytest.raises(PayloadTooLarge, match=f"{MAX_RESULT_BYTES:,}-byte limit"):
        encode_value("x" * BIG)
    assert encode_value("x" * 100) == b'"' + b"x" * 100 + b'"'


def test_a_too_large_result_settles_the_job_as_dead_with_a_result_error(app: Conveyor) -> None:
    @app.task(name="huge", retries=3)
    def huge() -> str:
        return "x" * BIG

    with eager(app, raise_errors=False):
        handle = huge.enqueue()
    record = handle.info()
    assert record.state is State.DEAD
    assert record.last_error is not None
    assert record.last_error.startswith("result_error:")
    assert f"{MAX_RESULT_BYTES:,}-byte limit" in record.last_error
    assert "return a reference" in record.last_error
    assert record.result is None


def _stored(app: Conveyor) -> list[Any]:
    import asyncio

    from conveyor.job import JobQuery

    return asyncio.run(app.backend.admin.query(JobQuery(limit=10)))


@pytest.mark.parametrize("value", [float("inf"), float("nan"), 1e300, -1e300])
def test_times_stored_before_the_checks_still_display(value: float) -> None:
    # Infinite or absurd times written by older versions (or damage) must not break the
    # CLI's or the dashboard's formatting.
    from conveyor.dashboard.views import ago, when
    from conveyor.timefmt import fmt_duration, fmt_time

    assert "not a valid time" in fmt_time(value)
    assert "not a valid time" in when(value)
    assert len(fmt_duration(value)) < 20 and len(ago(value)) < 30
