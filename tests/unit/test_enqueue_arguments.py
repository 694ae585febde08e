"""A call is checked against the task's function where it is enqueued, not in a worker.

Arguments that do not fit the signature raise a `TypeError` (`BadArguments`) at the call
site, through every way of enqueueing, and nothing is stored. A task defined in the script
being run (named ``__main__.…``) is refused at enqueue with what to do, unless only this
process could run it (eager mode, a memory store) or it has an explicit ``name=``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conveyor import ConfigError, Conveyor, SerializationError
from conveyor.job import JobQuery
from conveyor.task import BadArguments, JobSpec, Task


async def stored(app: Conveyor) -> int:
    return len(await app.backend.admin.query(JobQuery(limit=100)))


def resize_task(app: Conveyor) -> Task[Any, Any]:
    @app.task(name="resize_image")
    def resize_image(path: str, width: int = 640) -> None: ...

    return resize_image


def test_a_misspelt_keyword_is_a_type_error_at_the_call_site(app: Conveyor) -> None:
    resize_image = resize_task(app)
    # When a keyword is misspelt, Then enqueue raises at once, as calling the function would
    with pytest.raises(TypeError) as info:
        resize_image.enqueue("a.png", widht=3)
    assert isinstance(info.value, BadArguments)
    assert str(info.value) == (
        "task resize_image(path, width=640) cannot take these arguments: "
        "got an unexpected keyword argument 'widht' (did you mean 'width'?)"
    )


@pytest.mark.parametrize(
    ("args", "kwargs", "words"),
    [
        ((), {}, "missing a required argument: 'path'"),
        (("a", 1, 2), {}, "too many positional arguments"),
        (("a",), {"path": "b"}, "multiple values for argument 'path'"),
        (("a",), {"height": 1}, "unexpected keyword argument 'height'"),
    ],
)
async def test_calls_that_do_not_fit_are_refused_and_nothing_is_stored(
    app: Conveyor, args: tuple[Any, ...], kwargs: dict[str, Any], words: str
) -> None:
    resize_image = resize_task(app)
    with pytest.raises(BadArguments, match=words) as info:
        resize_image.enqueue(*args, **kwargs)
    assert "did you mean" not in str(info.value)
    assert await stored(app) == 0


async def test_every_way_of_enqueueing_checks_the_arguments(app: Conveyor) -> None:
    resize_image = resize_task(app)
    bad: list[Callable[[], object]] = [
        lambda: resize_image.options(delay=5).enqueue(widht=3),
        lambda: resize_image.enqueue_many([("a.png", 1, 2)]),
        lambda: app.enqueue_many([resize_image.call("a.png"), resize_image.call()]),
        lambda: app.build(JobSpec(resize_image, (), {"widht": 3}, resize_image.call().options)),
    ]
    for call in bad:
        with pytest.raises(BadArguments, match="resize_image"):
            call()
    with pytest.raises(BadArguments):
        await resize_image.enqueue_async(widht=3)
    with pytest.raises(BadArguments):
        await resize_image.options(priority="high").enqueue_async()
    with pytest.raises(BadArguments):
        await app.enqueue_many_async([resize_image.call(1, 2, 3)])
    # A batch with one bad call stores none of it.
    assert await stored(app) == 0


async def test_calls_that_fit_are_stored(app: Conveyor) -> None:
    resize_image = resize_task(app)

    @app.task(name="anything")
    def anything(*args: Any, key: int = 0, **kwargs: Any) -> None: ...

    @app.task(name="positional_only")
    def positional_only(a: int, /, b: int) -> None: ...

    resize_image.enqueue("a.png")
    resize_image.enqueue("a.png", 3)
    resize_image.enqueue(path="a.png", width=3)
    resize_image.enqueue_many([("a.png",), ("b.png", 2)])
    anything.enqueue(1, 2, key=3, widht=4)
    positional_only.enqueue(1, b=2)
    assert await stored(app) == 7
    with pytest.raises(BadArguments, match="'a' parameter is positional only"):
        positional_only.enqueue(a=1, b=2)  # type: ignore[call-arg]


def test_the_unique_key_function_only_sees_calls_that_fit(app: Conveyor) -> None:
    @app.task(name="sync_product", unique_key=lambda product_id: f"p-{product_id}")
    def sync_product(product_id: int) -> None: ...

    # The key function would raise its own confusing TypeError; the call is checked first.
    with pytest.raises(BadArguments, match=r"sync_product\(product_id\) cannot"):
        sync_product.enqueue(productid=7)  # type: ignore[call-arg]


def test_it_is_a_serialization_error_so_the_cli_prints_one_line(app: Conveyor) -> None:
    # `conveyor enqueue` prints every ConveyorError on one line; this one exits 2.
    resize_image = resize_task(app)
    with pytest.raises(SerializationError):
        resize_image.enqueue()


# -- tasks defined in __main__ --------------------------------------------------------------
def main_function() -> Callable[[int, int], int]:
    """A function as the script being run (``python script.py``) would define it."""

    def add(a: int, b: int) -> int:
        return a + b

    add.__module__ = "__main__"
    add.__qualname__ = "add"
    return add


def test_a_task_defined_in_main_is_refused_at_enqueue_with_what_to_do(tmp_path: Path) -> None:
    app = Conveyor(f"sqlite:///{tmp_path / 'jobs.db'}")
    add = app.task(main_function())
    assert add.name == "__main__.add"
    with pytest.raises(ConfigError) as info:
        add.enqueue(1, 2)
    message = str(info.value)
    assert message.startswith("task add is defined in __main__ (the script being run)")
    assert "'__main__.add'" in message
    assert "Move the task into a module" in message
    assert "@app.task(name='add')" in message
    assert not (tmp_path / "jobs.db").exists()  # refused before any store was made


def test_a_task_in_main_with_its_own_name_is_enqueued(tmp_path: Path) -> None:
    app = Conveyor(f"sqlite:///{tmp_path / 'jobs.db'}")
    add = app.task(name="add")(main_function())
    assert app.build(add.call(1, 2)).task == "add"


def test_a_task_in_main_runs_where_only_this_process_can_run_it(app: Conveyor) -> None:
    # A memory store is served only by workers in this process, so the name is found.
    add = app.task(main_function())
    assert app.build(add.call(1, 2)).task == "__main__.add"
    # Eager mode runs jobs in this process too, whatever the store.
    sqlite_app = Conveyor("sqlite:///unused.db")
    on_disk = sqlite_app.task(main_function())
    sqlite_app.eager = True
    assert sqlite_app.build(on_disk.call(1, 2)).task == "__main__.add"
    sqlite_app.eager = False
    with pytest.raises(ConfigError, match="defined in __main__"):
        sqlite_app.build(on_disk.call(1, 2))


def test_a_real_script_gets_the_error_on_one_line(tmp_path: Path) -> None:
    # Given `python script.py` that defines a task and enqueues it to a SQLite store
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            """
            from conveyor import ConfigError, Conveyor

            app = Conveyor("sqlite:///jobs.db")

            @app.task
            def add(a: int, b: int) -> int:
                return a + b

            try:
                add.enqueue(1, 2)
            except ConfigError as exc:
                print(exc)
            """
        )
    )
    # When it runs
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Then it is told why a worker could not run the job, and nothing was stored
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("task add is defined in __main__"), done.stdout
    assert not (tmp_path / "jobs.db").exists()


def test_a_schedule_whose_arguments_do_not_fit_is_refused_when_declared(app: Conveyor) -> None:
    async def report(month: str) -> None: ...

    # When a schedule gives the task no month, Then declaring it fails, not every tick
    with pytest.raises(BadArguments, match="missing a required argument: 'month'"):
        app.cron("0 6 1 * *", name="monthly")(report)
    assert app.schedules == {}
    app.cron("0 6 1 * *", args=("2030-01",), name="monthly")(report)
    assert list(app.schedules) == ["monthly"]
