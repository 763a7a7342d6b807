"""`mot verify`: every projection recomputed from the ledger, compared with the stored tables."""

from __future__ import annotations

import signal
from typing import Any, NoReturn

import click

from mot.cli.context import State, pass_state
from mot.cli.output import format_option, render
from mot.cli.params import whole
from mot.cli.progress import Progress


@click.command("verify")
@click.option("--tenant", help="Only this tenant's events and rows.")
@click.option("--show", type=whole(0), default=100, show_default=True,
              help="Print at most this many differences (all are counted).")
@click.option("--workers", type=whole(0), default=None, metavar="N",
              help="Processes that fold persons while this one writes, as mot replay's (default:"
              " one per CPU, up to 4, for 50,000 events or more; 0: none).")
@click.option("--no-refresh", is_flag=True,
              help="Compare the tables as they are, without bringing them up to date first.")
@format_option()
@click.option("--quiet", "-q", is_flag=True, help="No progress on standard error.")
@pass_state
def verify(obj: State, tenant: str | None, show: int, workers: int | None, no_refresh: bool,
           fmt: str | None, quiet: bool) -> None:
    """Recompute every projection from the ledger and compare it with the stored tables.

    The projections are rebuilt as mot replay builds them (the current moments
    copied a range of the log at a time, then each person folded once) into a
    scratch store in a temporary folder, so memory stays flat however long the
    ledger; then both sides are read in key order and compared field by field.
    Prints each differing row (projection, key, field, stored, expected) and
    exits 1 when there is any; exits 0 when the tables are exactly what the
    ledger says.

    Example: mot verify --tenant acme
    """
    # SIGTERM unwinds like Ctrl-C, so the scratch store's folder and fold workers go too.
    signal.signal(signal.SIGTERM, _terminated)
    services = obj.services
    progress = Progress("verify", quiet=quiet)
    if not no_refresh:
        services.projections.project()

    def report(phase: str, done: int, total: int) -> None:
        progress.update(f"recomputing: {phase} {done:,}" + (f"/{total:,}" if total else ""),
                        done=done / total if total else None, count=done)

    result = services.verifier.verify(tenant=tenant, show=show, progress=report, workers=workers)
    progress.finish()
    if result.differences:
        render([d.as_record() for d in result.shown or []], fmt,
               columns=("projection", "key", "field", "stored", "expected"))
        raise click.ClickException(
            f"{result.differences:,} difference(s) between the stored projections and the ledger "
            f"({result.events:,} events recomputed, {result.rows:,} rows compared)")
    if not result.rows:
        # A misspelt tenant compared nothing, and said "verified".
        from mot.cli.projection_commands import require_tenant

        require_tenant(services, tenant)
    click.echo(f"verified: {result.rows:,} rows of {len(_projections())} projections equal the "
               f"ledger's {result.events:,} events" + (f" (tenant {tenant})" if tenant else ""),
               err=False)


def _terminated(signum: int, frame: Any) -> NoReturn:
    click.echo("mot verify: stopped (SIGTERM), nothing compared", err=True)
    raise SystemExit(128 + signum)


def _projections() -> list[str]:
    from mot.projections.schema import PROJECTIONS

    return list(PROJECTIONS)


COMMANDS = [verify]
