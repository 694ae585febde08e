"""`Cli`: a `typer.Typer` whose commands show boolean flags as flags in their help.

Typer's rich help prints each option's type after its name, so a flag reads as if it took a
value: ``--burst <bool>``, ``--json <bool>``, ``--help <bool>``. Every command and group of
``conveyor`` (sub-commands registered later included) is made from the classes here, which
give flags an empty metavar: ``--burst``, as click and every other CLI print them.

They also make a usage mistake (an unknown option, a missing argument, a value the option
refuses) one line on stderr with exit 2, as every other error of the CLI is, instead of
Typer's usage block and boxed message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import typer
from typer.core import TyperCommand, TyperGroup

F = TypeVar("F", bound=Callable[..., Any])


def _plain_flags(params: list[Any]) -> list[Any]:
    # The help option is made on first use, so the params are fixed where help reads them.
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


@contextmanager
def one_line_usage_errors() -> Iterator[None]:
    """Turn click's usage errors raised inside into ``error: ...`` on stderr and their exit
    code (2).

    Typer ships its own copy of click (older Typer used click itself), so the errors are told
    by their fields, as Typer tells its ``NoArgsIsHelpError`` by name; that one has already
    printed the help and keeps its exit code.
    """
    try:
        yield
    except Exception as exc:
        code = getattr(exc, "exit_code", None)
        message = getattr(exc, "format_message", None)
        if not isinstance(code, int) or not callable(message):
            raise
        if type(exc).__name__ != "NoArgsIsHelpError":
            ctx = getattr(exc, "ctx", None)
            path = getattr(ctx, "command_path", None) or "conveyor"
            text = " ".join(str(message()).split()).rstrip(".")
            typer.echo(f"error: {text} (see `{path} --help`)", err=True)
        raise typer.Exit(code) from None


class Command(TyperCommand):
    """A command whose help shows flags without a type."""

    def get_params(self, ctx: Any) -> list[Any]:
        """The command's parameters, its ``--help`` included, flags without a metavar."""
        return _plain_flags(super().get_params(ctx))

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> Any:
        """Parse ``args`` into a context; a usage mistake is one error line, exit 2."""
        with one_line_usage_errors():
            return super().make_context(info_name, args, parent, **extra)


class Group(TyperGroup):
    """A group of commands whose own help shows flags without a type."""

    def get_params(self, ctx: Any) -> list[Any]:
        """The group's parameters, its ``--help`` included, flags without a metavar."""
        return _plain_flags(super().get_params(ctx))

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> Any:
        """Parse ``args`` into a context; a usage mistake is one error line, exit 2."""
        with one_line_usage_errors():
            return super().make_context(info_name, args, parent, **extra)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        """The sub-command ``args`` name; an unknown one is one error line, exit 2."""
        with one_line_usage_errors():
            return super().resolve_command(ctx, args)


class Cli(typer.Typer):
    """`typer.Typer` making its group from `Group` and, unless told otherwise, every
    command from `Command`."""

    def __init__(self, **settings: Any) -> None:
        settings.setdefault("cls", Group)
        super().__init__(**settings)

    def command(self, name: str | None = None, **settings: Any) -> Callable[[F], F]:
        """Register a command (see `typer.Typer.command`), made from `Command` by default."""
        settings.setdefault("cls", Command)
        register: Callable[[F], F] = super().command(name, **settings)
        return register
