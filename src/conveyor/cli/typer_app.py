"""`Cli`: a `typer.Typer` whose commands show boolean flags as flags in their help.

Typer's rich help prints each option's type after its name, so a flag reads as if it took a
value: ``--burst <bool>``, ``--json <bool>``, ``--help <bool>``. Every command and group of
``conveyor`` (sub-commands registered later included) is made from the classes here, which
give flags an empty metavar: ``--burst``, as click and every other CLI print them.

They also make a usage mistake (an unknown option, a missing argument, a value the option
refuses) one line on stderr with exit 2, as every other error of the CLI is, instead of
Typer's usage block and boxed message.

`LazyGroup` keeps start-up fast: its commands are a table of `Verb` (name, where the command
lives, its one-line help), and a verb's module, with what it imports (rich tables, the
dashboard's server, the exporters, ...), is imported only when that verb runs, shows its own
help or completes its own options. ``conveyor --help`` lists every verb from the table alone.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

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


@dataclass(frozen=True)
class Verb:
    """One command of a `LazyGroup`, known by its name and one-line help before its import.

    ``target`` is ``"module:attribute"``: a command function, or a `typer.Typer` of
    sub-commands. ``help`` is the first paragraph of that command's own help: the line the
    group's ``--help`` shows for it (tests/unit/test_startup_imports.py keeps the two equal).
    """

    name: str
    target: str
    help: str


class LazyCommands(MutableMapping[str, Any]):
    """A group's commands by name, a `Verb`'s built on first use by ``build``.

    Iterating gives the names alone (verbs first, in table order): nothing is imported.
    Looking one up builds it once; `peek` gives a command fit for a listing without
    building it.
    """

    def __init__(
        self, verbs: Iterable[Verb], built: dict[str, Any], build: Callable[[Verb], Any]
    ) -> None:
        self._verbs = {verb.name: verb for verb in verbs}
        self._built = dict(built)
        self._build = build

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            self._built[name] = self._build(self._verbs[name])
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        if name not in self._built and name not in self._verbs:
            raise KeyError(name)
        self._built.pop(name, None)
        self._verbs.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        yield from self._verbs
        yield from (name for name in self._built if name not in self._verbs)

    def __len__(self) -> int:
        return len(self._verbs.keys() | self._built.keys())

    def peek(self, name: str) -> Any:
        """The command ``name`` if built, else a stand-in with the verb's name and help
        (``None`` for an unknown name): what a listing or a completion of names needs."""
        if name in self._built:
            return self._built[name]
        verb = self._verbs.get(name)
        return None if verb is None else Command(verb.name, help=verb.help)


class LazyGroup(Group):
    """A `Group` whose `verbs` are imported only when one runs, shows its own help or
    completes its own options; its own ``--help`` lists them from the table.

    A subclass names the table (``verbs = (Verb(...), ...)``) and is given to `Cli` as
    ``cls``; the app needs a callback (Typer makes a lone command of an app without one).
    Commands registered the usual Typer way still work, listed after the verbs.
    """

    verbs: ClassVar[tuple[Verb, ...]] = ()

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.lazy = LazyCommands(self.verbs, dict(self.commands), self._build)
        self.commands = self.lazy

    def list_commands(self, ctx: Any) -> list[str]:
        """The names of the group's commands, in order; none is imported."""
        return list(self.lazy)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """The command ``cmd_name`` for a listing: a verb not yet imported stays so."""
        return self.lazy.peek(cmd_name)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        """The sub-command ``args`` name, imported and built: it is about to run, show its
        help or complete its options."""
        name, command, rest = super().resolve_command(ctx, args)
        if name is not None:
            command = self.lazy[name]
        return name, command, rest

    def _build(self, verb: Verb) -> Any:
        # Built by Typer exactly as a command registered on the root app would be: the same
        # markup mode, suggestions and command/group classes (`Cli`).
        module, _, attribute = verb.target.partition(":")
        target = getattr(importlib.import_module(module), attribute)
        single = Cli(rich_markup_mode=self.rich_markup_mode, suggest_commands=self.suggest_commands)
        if isinstance(target, typer.Typer):
            single.add_typer(target, name=verb.name)
        else:
            single.command(verb.name)(target)
        return typer.main.get_group(single).commands[verb.name]
