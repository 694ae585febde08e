"""`Cli`: a `typer.Typer` whose commands show boolean flags as flags in their help.

Typer's rich help prints each option's type after its name, so a flag reads as if it took a
value: ``--burst <bool>``, ``--json <bool>``, ``--help <bool>``. Every command and group of
``conveyor`` (sub-commands registered later included) is made from the classes here, which
give flags an empty metavar: ``--burst``, as click and every other CLI print them.
"""

from __future__ import annotations

from collections.abc import Callable
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


class Command(TyperCommand):
    """A command whose help shows flags without a type."""

    def get_params(self, ctx: Any) -> list[Any]:
        """The command's parameters, its ``--help`` included, flags without a metavar."""
        return _plain_flags(super().get_params(ctx))


class Group(TyperGroup):
    """A group of commands whose own help shows flags without a type."""

    def get_params(self, ctx: Any) -> list[Any]:
        """The group's parameters, its ``--help`` included, flags without a metavar."""
        return _plain_flags(super().get_params(ctx))


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
