"""``conveyor enqueue``: one job for a registered task, its arguments given as JSON."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from conveyor.cli.common import (
    AppOption,
    JsonOption,
    UrlOption,
    handle_errors,
    out,
    print_json,
)
from conveyor.cli.loading import resolve_app
from conveyor.errors import ConfigError
from conveyor.serialization import clip_repr


def parse_json(option: str, text: str | None, kind: type) -> Any:
    """``text`` parsed as a JSON array (``kind=list``) or object (``dict``), or `ConfigError`.

    Only the shape is checked here; the values are checked like any enqueued argument.
    """
    if text is None:
        return kind()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{option} is not valid JSON ({exc.msg} at character {exc.pos}): {clip_repr(text)}"
        ) from None
    except RecursionError:
        # The stdlib decoder recurses once per level: thousands of "[" exhaust the stack.
        raise ConfigError(
            f"{option} is nested too deeply to read ({clip_repr(text)}); arguments may be "
            "nested at most 100 levels"
        ) from None
    if not isinstance(value, kind):
        shape = "array, e.g. '[1, \"a\"]'" if kind is list else "object, e.g. '{\"k\": 1}'"
        raise ConfigError(f"{option} must be a JSON {shape}; got {clip_repr(text)}")
    return value


@handle_errors
def enqueue(
    task: Annotated[str, typer.Argument(help="Registered task name, e.g. myapp.send_email.")],
    app_spec: AppOption = None,
    url: UrlOption = None,
    args: Annotated[
        str | None, typer.Option("--args", help="Positional arguments as a JSON array.")
    ] = None,
    kwargs: Annotated[
        str | None, typer.Option("--kwargs", help="Keyword arguments as a JSON object.")
    ] = None,
    queue: Annotated[str | None, typer.Option(help="Queue (default: the task's).")] = None,
    priority: Annotated[
        str | None,
        typer.Option(
            help="high, normal, low, or a whole number (larger runs first: above 0 is high, "
            "0 normal, below 0 low; default: the task's)."
        ),
    ] = None,
    delay: Annotated[float | None, typer.Option(help="Run no sooner than this many s.")] = None,
    unique_key: Annotated[
        str | None, typer.Option(help="Skip if a queued/running job holds this key.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Enqueue one job for a registered task and print its id."""
    call_args = parse_json("--args", args, list)
    call_kwargs = parse_json("--kwargs", kwargs, dict)
    app = resolve_app(app_spec, url, need_app=True, create=True)
    bound = app.get_task(task).options(
        queue=queue, priority=priority, delay=delay, unique_key=unique_key
    )
    try:
        handle = bound.enqueue(*call_args, **call_kwargs)
    finally:
        app.close()
    if as_json:
        print_json({"id": handle.id, "existing": handle.existing})
    else:
        out.print(handle.id, highlight=False)
