"""Commands for analysts: export the tables to files (and, below, the report)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from mot.cli.context import State, pass_state
from mot.cli.progress import Progress
from mot.cli.projection_commands import Timestamp
from mot.wording import counted

EXPORT_FORMATS = ("parquet", "csv", "jsonl")


@click.command("export")
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), default="parquet",
              show_default=True)
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory to write TABLE.FORMAT files into (created if missing).")
@click.option("--tenant", help="Only this tenant's rows.")
@click.option("--as-of", type=Timestamp(),
              help="The projections as they were then (moments that had occurred by then).")
@click.option("--no-refresh", is_flag=True,
              help="Do not bring projections up to date first (read-only access).")
@click.option("--quiet", "-q", is_flag=True, help="No progress on standard error.")
@pass_state
def export(obj: State, fmt: str, out: Path, tenant: str | None, as_of: datetime | None,
           no_refresh: bool, quiet: bool) -> None:
    """Write every projection and the current moments to files, one per table.

    Files are named after their tables (relationships.parquet, moments.parquet, ...)
    and hold the fields of `mot query`, with their types in Parquet. Example:

        mot export --format parquet --out exports/
        duckdb -c "select stage, count(*) from 'exports/relationships.parquet' group by 1"
    """
    services = obj.services
    if not no_refresh:
        services.projections.project()
    progress = Progress("export", quiet=quiet)

    def report(table: str, rows: int) -> None:
        progress.update(f"{table} {counted(rows, 'row')}", count=rows)

    written = services.exporter.export(
        out, fmt, tenant=tenant, as_of=as_of, progress=report)
    progress.finish()
    for item in written:
        click.echo(f"{item.path}  {counted(item.rows, 'row')}")


@click.command("report")
@click.option("--tenant", help="Only this tenant (default: every tenant, a section each).")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              default="report.html", show_default=True, help="The HTML file to write ('-': stdout).")
@click.option("--since", type=Timestamp(), help="Weekly charts and posts from this time.")
@click.option("--until", type=Timestamp(), help="Weekly charts and posts up to this time.")
@click.option("--no-refresh", is_flag=True,
              help="Do not bring projections up to date first (read-only access).")
@pass_state
def report(obj: State, tenant: str | None, out: Path, since: datetime | None,
           until: datetime | None, no_refresh: bool) -> None:
    """Write one self-contained HTML page of what the projections say: stage funnel and its
    weekly movement, reciprocity, amplification, team scoreboard, listening share.

    The page needs no network (charts are inline SVG) and prints well. Example:

        mot report --tenant acme --out acme.html --since 2026-01-01T00:00:00Z
    """
    services = obj.services
    if not no_refresh:
        services.projections.project()
    page = services.report(tenant=tenant, since=since, until=until)
    if tenant is not None and 'data-tenant="' not in page:
        raise click.ClickException(f"no customers of tenant {tenant!r} in this store")
    if str(out) == "-":
        click.echo(page, nl=False)
        return
    out.write_text(page, encoding="utf-8")
    click.echo(f"wrote {out} ({len(page.encode()):,} bytes)")


COMMANDS = [export, report]
