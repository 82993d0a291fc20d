"""Command groups whose subcommands are imported only when one of them runs.

``vml --version`` and ``vml --help`` must not pay for importing every use case. A group lists
its subcommands by name with the first paragraph of their help (what a listing shows), and loads
a subcommand's module the first time click resolves it; a test checks that the listed help is
the loaded command's own.
"""

from __future__ import annotations

from difflib import get_close_matches
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

try:
    from typer import _click as click  # newer typer bundles its own click
except ImportError:  # pragma: no cover - typer that depends on click
    import click  # type: ignore[no-redef]

from vmlog.cli.registry import Lazy

__all__ = ["Lazy", "LazyGroup", "lazy_group", "load_command", "stand_in", "summary"]


def load_command(entry: Lazy) -> click.Command:
    """Import the entry's target and build its click command (plain help: rich's help formatter costs 0.1 s)."""
    module_name, _, attribute = entry.target.partition(":")
    # __import__, not importlib.import_module: only the former shows in `python -X importtime`
    obj = getattr(__import__(module_name, fromlist=[attribute]), attribute)
    holder = typer.Typer(rich_markup_mode=None, add_completion=False)
    if not isinstance(obj, typer.Typer):
        holder.command(entry.name)(obj)
        return typer.main.get_command(holder)  # one command: typer builds it alone, under our name
    holder.add_typer(obj, name=entry.name, cls=lazy_group(entry.subcommands))
    return typer.main.get_group(holder).commands[entry.name]


def stand_in(entry: Lazy) -> click.Command:
    """A command that only answers for listings: its name and help."""
    return TyperCommand(entry.name, help=entry.help, rich_markup_mode=None)


class LazyGroup(TyperGroup):
    """A typer group that imports a subcommand's module only when the subcommand is resolved."""

    entries: tuple[Lazy, ...] = ()

    def __init__(self, **attrs: Any) -> None:
        attrs["rich_markup_mode"] = None
        super().__init__(**attrs)
        self._listing = False

    def _entry(self, name: str) -> Lazy | None:
        return next((entry for entry in self.entries if entry.name == name), None)

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = super().list_commands(ctx)
        return names + [entry.name for entry in self.entries if entry.name not in names]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = self.commands.get(cmd_name)
        if found is not None:
            return found
        entry = self._entry(cmd_name)
        if entry is None:
            return None
        if self._listing:
            return stand_in(entry)
        command = self.commands[cmd_name] = load_command(entry)
        return command

    def _listed(self, method: Any, *args: Any) -> Any:
        """Call a help or completion listing with stand-ins for the subcommands not loaded yet."""
        self._listing = True
        try:
            return method(*args)
        finally:
            self._listing = False

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Each subcommand with the whole first paragraph of its help, wrapped to the terminal (not cut off)."""
        rows = []
        for name in self.list_commands(ctx):
            command = self._listed(self.get_command, ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, summary(command)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[Any]:
        return self._listed(super().shell_complete, ctx, incomplete)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.UsageError as exc:
            names = self.list_commands(ctx)
            matches = get_close_matches(args[0], names) if args and "Did you mean" not in exc.message else []
            if matches:
                exc.message = f"{exc.message.rstrip('.')}. Did you mean {', '.join(repr(m) for m in matches)}?"
            raise


def summary(command: click.Command) -> str:
    """What a listing says of a command: its short help, else the first paragraph of its help on one line."""
    text = command.short_help or (command.help or "").split("\n\n")[0]
    return " ".join(text.split())


def lazy_group(entries: tuple[Lazy, ...]) -> type[LazyGroup]:
    """A :class:`LazyGroup` class listing ``entries`` (typer builds groups from a class, not an instance)."""
    return type("LazyGroup", (LazyGroup,), {"entries": tuple(entries)})
