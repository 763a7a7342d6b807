"""What every `mot` command receives: the typed `State`, through `pass_state`.

Its own module, so that the command modules and the group in `mot.cli.main`
both import it and neither imports the other.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import update_wrapper
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

import click

if TYPE_CHECKING:
    from mot.bootstrap import Services

P = ParamSpec("P")
R = TypeVar("R")


class State:
    """What every command shares: the store URL, opened on first use and closed at exit.

    Commands that only read never create a store (`no mot store at ...`); those that write
    are marked with `creates_store`.
    """

    def __init__(self, store: str | None) -> None:
        self.store = store
        self.create = False  # set by `creates_store` before the command runs
        self.failed = False  # the command ended in an error: a store it made and left empty goes
        self._services: Services | None = None

    @property
    def services(self) -> Services:
        if self._services is None:
            from mot.bootstrap import open_store, redacted, store_url
            from mot.service.ports import StoreNotFound, StoreUnavailable

            # A directory or another file named as the store, said before opening it: opening
            # left a lock file beside it ("/etc/passwd.lock"), and said "unable to open
            # database file" or "file is not a database".
            problem = _not_a_store(store_url(self.store))
            if problem is not None:
                raise click.ClickException(problem)
            try:
                self._services = open_store(self.store, create=self.create)
            except StoreNotFound as error:
                raise click.ClickException(_not_found(error.where)) from None
            except StoreUnavailable as error:
                raise click.ClickException(str(error)) from None
            except Exception as error:  # a bad URL, a file that is not a database: say which
                raise click.ClickException(
                    f"cannot open the store {redacted(store_url(self.store))!r}: {error}"
                ) from error
        return self._services

    @property
    def store_shown(self) -> str:
        """The store's URL as it may be printed: never with its password."""
        from mot.bootstrap import redacted, store_url

        return redacted(store_url(self.store))

    def close(self) -> None:
        if self._services is not None:
            if self.failed and self.create:
                self._services.discard()
            else:
                self._services.close()
            self._services = None


pass_state = click.make_pass_decorator(State)


def creates_store(command: Callable[Concatenate[State, P], R]) -> Callable[Concatenate[State, P], R]:
    """Marks a command that writes: it creates the store when there is none yet."""
    def creating(state: State, /, *args: P.args, **kwargs: P.kwargs) -> R:
        state.create = True
        return command(state, *args, **kwargs)

    return update_wrapper(creating, command)


def _not_found(where: str) -> str:
    """Why a read-only command found no store at `where`: a path that is a directory, or a
    file that is no SQLite database, said so ("no mot store at /etc/passwd; `mot import`
    creates one" sent the user to an import that then failed: "file is not a database")."""
    return _not_a_store(where) or f"no mot store at {where}; `mot import` creates one"


def _not_a_store(where: str) -> str | None:
    """Why the SQLite path `where` cannot be a store: a directory, or a file that is no
    SQLite database; None otherwise."""
    import os

    if "://" not in where and os.path.isdir(where):
        return (f"{where} is a directory, not a mot store: --store names a store's file"
                f" (say {os.path.join(where, 'mot.db')}) or a postgresql:// URL")
    if "://" not in where and os.path.isfile(where) and os.path.getsize(where) > 0:
        try:
            with open(where, "rb") as file:
                if file.read(16) == b"SQLite format 3\x00":
                    return None
        except OSError:
            return None
        return (f"{where} is not a mot store (not a SQLite database; nothing was"
                " changed): --store names a mot store's file or a postgresql:// URL")
    return None
