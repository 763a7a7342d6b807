"""The `mot` command: one click group; every command calls the service layer.

Every command receives the typed `State` (`mot.cli.context.pass_state`): the
store URL, and the services wired by the composition root (`mot.bootstrap`),
opened on first use and closed at exit. Errors a user can act on are `click.ClickException`s, and
help text comes from the docstrings.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

import click

from mot import __version__
from mot.cli.context import State

STORE_HELP = ("Where the ledger lives: a SQLite file path (default ./mot.db) or a postgresql:// "
              "URL. Also read from MOT_STORE.")


# Command name -> the module of mot.cli that defines it. A command's module is imported
# only when that command runs: `mot query` does not load Kafka's client or the HTTP
# server, and start-up is most of a query's wall time.
COMMAND_MODULES: dict[str, str] = {
    "import": "ledger_commands", "show": "ledger_commands", "quarantine": "ledger_commands",
    "project": "projection_commands", "replay": "projection_commands",
    "status": "projection_commands", "query": "projection_commands",
    "log": "projection_commands", "timeline": "projection_commands",
    "story": "projection_commands",
    "kafka": "kafka_commands",
    "token": "http_commands", "serve": "http_commands",
    "export": "analyst_commands", "report": "analyst_commands",
    "verify": "verify_commands",
    "sample": "sample_commands",
    "alerts": "alert_commands",
    "erase": "erasure_commands", "erasures": "erasure_commands", "upgrade": "erasure_commands",
    "identity": "identity_commands",
}


def _set_store(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        state = ctx.find_object(State)
        if state is not None:
            state.store = value


def _store_option() -> click.Option:
    """`--store` after a subcommand: the same setting as `mot --store` (the later one wins)."""
    return click.Option(["--store"], metavar="URL", expose_value=False, callback=_set_store,
                        help=STORE_HELP)


def _with_global_options(command: click.Command) -> click.Command:
    """Give a command, and every subcommand of a group, the global options."""
    if not any(p.name == "store" for p in command.params):
        command.params.append(_store_option())
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _with_global_options(sub)
    return command


class MotGroup(click.Group):
    """Loads each command on first use, accepts the global options after a subcommand too,
    and turns failures of the store into one clear line instead of a traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMAND_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module_name = COMMAND_MODULES.get(cmd_name)
        if module_name is None:
            return None
        commands: list[click.Command] = import_module(f"mot.cli.{module_name}").COMMANDS
        return _with_global_options(next(c for c in commands if c.name == cmd_name))

    def resolve_command(self, ctx: click.Context, args: list[str]
                        ) -> tuple[str | None, click.Command | None, list[str]]:
        """A mistyped command names the nearest ones, as click does for a subgroup's (whose
        commands it knows; this group's are loaded on first use, so click knows none)."""
        name = click.utils.make_str(args[0]) if args else ""
        if (name and not ctx.resilient_parsing and not name.startswith("-")
                and name not in COMMAND_MODULES):
            from mot.cli.params import did_you_mean

            hint = did_you_mean(name, COMMAND_MODULES)
            ctx.fail(f"No such command {name!r}." + (f" {hint}" if hint else ""))
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return self._invoke(ctx)
        except click.exceptions.Exit as exit:
            if exit.exit_code != 0 and isinstance(ctx.obj, State):
                ctx.obj.failed = True
            raise
        except BaseException:
            if isinstance(ctx.obj, State):
                ctx.obj.failed = True
            raise

    def _invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            from mot.cli.interrupt import Interrupted

            raise Interrupted("what was committed before is kept") from None
        except BrokenPipeError:
            # The reader went away (`| head`): it has what it wanted. Say nothing, status 0
            # (click would exit 1, which fails `set -o pipefail` scripts).
            from mot.cli.output import silence_stdout

            silence_stdout()
            raise click.exceptions.Exit(0) from None
        except Exception as error:
            from mot.service.config import ConfigError

            if isinstance(error, ConfigError):  # mot.toml's [alerts], read on first use
                raise click.ClickException(str(error)) from None
            if not _is_store_error(error):
                raise
            if type(error).__name__ == "KeyProblem":  # the master key, which says what to do
                raise click.ClickException(str(error)) from None
            if isinstance(error, OSError) and error.filename is not None:
                # A file the command reads or writes (`--out`, say): named, not blamed on
                # the store.
                raise click.ClickException(
                    f"{error.filename}: {error.strerror or error}") from error
            raise click.ClickException(f"store error: {error}") from error


def _is_store_error(error: Exception) -> bool:
    import sqlite3

    from eventsourcing.persistence import PersistenceError

    return isinstance(error, PersistenceError | sqlite3.Error | OSError) or (
        type(error).__module__.startswith("psycopg")
    ) or type(error).__name__ == "KeyProblem"  # the master key or keystore (adapters/crypto.py)


def _version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from mot import native  # hashes the compiled modules' sources: only when asked

    click.echo(f"mot, version {__version__}, {native.build()}")
    ctx.exit()


@click.group(cls=MotGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--store", envvar="MOT_STORE", metavar="URL", help=STORE_HELP)
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_version,
              help="Show the version, and whether the record path is compiled, and exit.")
@click.pass_context
def cli(ctx: click.Context, store: str | None) -> None:
    """mot, the moments-of-truth ledger.

    Record every brand-customer moment as an immutable event, then project
    relationship stages, reciprocity balances, public amplification and team
    scoreboards from them.

    \b
    Examples:
      mot sample 5000 > moments.jsonl         # or your own JSONL / CSV
      mot import moments.jsonl
      mot query relationships --limit 10
      mot story
      mot --store postgresql://mot@db/mot status

    \b
    Tab completion (bash; zsh and fish alike, see docs/cli.md):
      eval "$(_MOT_COMPLETE=bash_source mot)"
    """
    state = State(store)
    ctx.obj = state
    ctx.call_on_close(state.close)


def main() -> None:
    import sys

    try:
        cli(prog_name="mot")
    except SystemExit as exit:
        # What is still buffered is written now, not at interpreter exit, where a closed
        # pipe would print "Exception ignored" and end with status 120.
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            from mot.cli.output import silence_stdout

            silence_stdout()
            if exit.code in (0, None):
                sys.exit(0)
        raise
