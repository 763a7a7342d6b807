"""Ctrl-C ends a command with status 130 (128 + SIGINT, the shell's convention) and one
line saying what was committed and that running the command again continues.

Every long command commits in steps (an import per batch, a projection per page, a
rebuild per range with its position), so an interrupt loses nothing committed; the
line tells the user so instead of click's bare "Aborted!".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

import click

INTERRUPTED_STATUS = 130


class Interrupted(click.ClickException):
    """Ctrl-C (or SIGINT): status 130, the message on standard error without "Error:"."""

    exit_code = INTERRUPTED_STATUS

    def show(self, file: IO[Any] | None = None) -> None:
        import sys

        # On a terminal the line starts after the "^C" the terminal echoed.
        start = "\n" if sys.stderr.isatty() else ""
        click.echo(f"{start}interrupted: {self.format_message()}", err=True)


@contextmanager
def interruptible(committed: Callable[[], str], rerun: str) -> Iterator[None]:
    """Turn Ctrl-C inside the block into `Interrupted`.

    `committed` is called after the interrupt to say what is safely stored (it may read
    the store); `rerun` is the command that continues, such as "mot replay".
    """
    try:
        yield
    except KeyboardInterrupt:
        try:
            done = committed()
        except Exception as error:  # the store itself was cut off mid-statement
            done = f"what was committed is kept (could not read how far: {error})"
        raise Interrupted(f"{done}; run `{rerun}` again to continue") from None
