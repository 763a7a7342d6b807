"""Rendering records for people and programs: table, json, jsonl, csv."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click
import orjson

from mot.cli.params import Choice

FORMATS = ("table", "json", "jsonl", "csv")
F = TypeVar("F", bound=Callable[..., Any])


def format_option(*prose: str) -> Callable[[F], F]:
    """The one `--format` of every command that prints: table, json, jsonl, csv; `prose`
    formats first (such as "text") where words are the point, the first being the default."""
    choices = (*prose, *FORMATS)
    if prose:
        more = ", ".join(prose[1:] + FORMATS[:-1])
        help_text = f"{prose[0]} (default), {more} or {FORMATS[-1]}."
    else:
        help_text = "table (default on a terminal), json (default otherwise), jsonl or csv."
    return click.option("--format", "fmt", type=Choice(choices),
                        default=prose[0] if prose else None, help=help_text)


def echo_fitted(line: str, width: int | None) -> None:
    """Print a line of text for a person, broken between words to fit `width` (None: as it
    is), each continuation indented 4 deeper than the line: a terminal breaks a long line
    mid-word at its edge, and the continuation then reads as a line of its own."""
    if width is None or len(line) <= width:
        click.echo(line)
        return
    import textwrap

    indent = " " * (len(line) - len(line.lstrip(" ")) + 4)
    click.echo(textwrap.fill(line, width, subsequent_indent=indent, break_long_words=False,
                             break_on_hyphens=False))


def default_format() -> str:
    """`table` on a terminal, JSON when piped (SPEC §5)."""
    return "table" if sys.stdout.isatty() else "json"


def render(records: Sequence[dict[str, Any]], fmt: str | None, columns: Sequence[str] = (), *,
           expanded: bool = False) -> None:
    """Write `records` to standard output in the chosen format (`expanded`: a table's
    records one field a line)."""
    fmt = fmt or default_format()
    if fmt == "json":
        click.echo(orjson.dumps(list(records), option=orjson.OPT_INDENT_2).decode())
    elif fmt == "jsonl":
        out = sys.stdout.buffer
        for record in records:
            out.write(orjson.dumps(record) + b"\n")
        out.flush()
    elif fmt == "csv":
        import csv  # here: the other formats need none of it

        names = list(columns or (records[0].keys() if records else ()))
        writer = csv.DictWriter(sys.stdout, fieldnames=names, extrasaction="ignore",
                                lineterminator="\n")
        writer.writeheader()
        for record in records:
            writer.writerow({k: _csv_cell(v) for k, v in record.items()})
    else:
        from mot.cli import tables  # fitted to the terminal (cli/tables.py)

        click.echo(tables.expanded(records, columns) if expanded
                   else tables.fit(records, columns, tables.terminal_width()))


def _csv_cell(value: Any) -> str:
    """A CSV cell: every value exact (floats whole, not rounded as a table shows them),
    booleans and nulls as `mot export --format csv` writes them, lists as their JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def silence_stdout() -> None:
    """Point standard output at /dev/null once its reader has gone (`mot query | head`),
    so that nothing more is written, or reported, on the closed pipe."""
    import os

    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):  # not a real file (a test's capture)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
