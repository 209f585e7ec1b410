"""The Typer app every `guestgate` command belongs to: help that reads well, start-up errors as a line.

`App` is `typer.Typer` whose groups and commands use the classes below, so a command added with
`@app.command()` gets, without asking:

- help in the classic form: `--org ORG`, `--banner`, `SITE_ID` (no `<str>`/`<bool>` type tags,
  no `{site_id}` in the usage line), docstring paragraphs re-flowed to the terminal's width;
- `StartupError` and `ConfigError` reported as the message on standard error and the exit
  code of `guestgate.startup.ExitCode`, never as a traceback.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import typer

# Typer carries its own copy of click; its classes (not the `click` package's) are the ones in use.
from typer import _click as click
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from guestgate.config import ConfigError
from guestgate.startup import StartupError, exit_code_of


def reflow(text: str | None) -> str | None:
    """Docstring paragraphs as single lines: the help renderer wraps them to the terminal."""
    if text is None:
        return None
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)


def _classic_params(params: list[click.Parameter]) -> None:
    """Metavars in place of type tags: flags show none, values their name (or the one given)."""
    for param in params:
        if isinstance(param, TyperOption):
            if param.is_flag or param.count:
                param.metavar = ""
            elif param.metavar is None:
                param.metavar = (param.name or "value").upper()
            _range_into_help(param)
        elif isinstance(param, TyperArgument):
            if param.metavar is None:
                param.metavar = (param.name or "value").upper()
            # The argument's name is its metavar already; a type column would repeat `<str>`.
            param.display_type_rich = _no_type  # type: ignore[method-assign]


def _no_type(ctx: click.Context) -> None:
    return None


def _range_into_help(option: TyperOption) -> None:
    """`(1..65535)` at the end of the help instead of a `[1<=x<=65535]` tag widening the metavar column."""
    low, high = getattr(option, "min", None), getattr(option, "max", None)
    if low is None and high is None:
        return
    option._get_number_range_help_str = _no_range  # type: ignore[method-assign]
    span = f"{low}..{high}" if low is not None and high is not None else f">= {low}" if low is not None else f"<= {high}"
    if option.help and f"({span})" not in option.help:
        option.help = f"{option.help.rstrip('.')} ({span})."


def _no_range() -> None:
    return None


class _ClassicHelp:
    """What commands and groups share: re-flowed help, classic metavars, `--help` without a tag."""

    params: list[click.Parameter]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["help"] = reflow(kwargs.get("help"))
        super().__init__(*args, **kwargs)
        _classic_params(self.params)

    def get_help_option(self, ctx: click.Context) -> Any:
        """`--help`, without a `<bool>` tag."""
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            _classic_params([option])
        return option


class Command(_ClassicHelp, TyperCommand):
    """A `guestgate` command: classic metavars and usage, re-flowed help."""

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        """`[OPTIONS] SITE_ID`: a required argument bare, an optional one in brackets."""
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = param.metavar or (param.name or "").upper()
                name = name if param.required else f"[{name}]"
                pieces.append(name + ("..." if param.nargs != 1 else ""))
        return pieces


class Group(_ClassicHelp, TyperGroup):
    """A `guestgate` command group; the root one turns start-up errors into a message and an exit code."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        """The group's options (the root's completion options among them), with classic metavars."""
        params = super().get_params(ctx)
        _classic_params(params)
        return params

    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand; a StartupError or ConfigError becomes its message and exit code."""
        try:
            return super().invoke(ctx)
        except (StartupError, ConfigError) as exc:
            message = str(exc)
            typer.echo(message if message.startswith("guestgate") else f"guestgate: {message}", err=True)
            raise typer.Exit(int(exit_code_of(exc))) from None


class App(typer.Typer):
    """`typer.Typer` with guestgate's group and command classes as the defaults."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", Group)
        # A traceback is for bugs; the errors a user can cause are StartupError/ConfigError.
        kwargs.setdefault("pretty_exceptions_show_locals", False)
        super().__init__(**kwargs)

    def command(self, name: str | None = None, **kwargs: Any) -> Callable[[Any], Any]:
        """`@app.command()` with `Command` as the default class."""
        kwargs.setdefault("cls", Command)
        return super().command(name, **kwargs)
