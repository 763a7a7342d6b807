"""Commands for analysts: export the tables to files (and, below, the report)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mot.cli.context import State, pass_state
from mot.cli.params import Choice, Timestamp
from mot.cli.progress import Progress
from mot.wording import counted

if TYPE_CHECKING:
    from mot.service.export import Exporter

EXPORT_FORMATS = ("parquet", "csv", "jsonl")


@click.command("export")
@click.option("--format", "fmt", type=Choice(EXPORT_FORMATS), default="parquet",
              show_default=True)
@click.option("--out", "out", type=click.Path(file_okay=False), required=True,
              callback=lambda _ctx, _param, value: _a_directory(_not_empty(value)),
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
    # The Arrow libraries load while the store opens (on PostgreSQL, connections and
    # round trips that leave the CPU idle).
    arrow = _ArrowLoad(obj.store) if fmt == "parquet" else None
    if arrow is not None and no_refresh and as_of is None:
        # Only reads of the tables as they are: on PostgreSQL, by the ADBC driver alone.
        from mot.bootstrap import arrow_exporter

        with arrow_exporter(obj.store) as exporter:
            if exporter is not None:
                arrow.wait()
                _export(obj, exporter, out, fmt, tenant, as_of, quiet)
                return
    services = obj.services
    if arrow is not None:
        arrow.wait()
    if not no_refresh:
        services.projections.project()
    _export(obj, services.exporter, out, fmt, tenant, as_of, quiet)


def _not_empty(out: str) -> Path:
    """`--out` as a path; an empty one is refused (pathlib reads it as the current folder, so
    `--out "$DIR"` with DIR unset wrote, and overwrote, the files there)."""
    if not out:
        raise click.BadParameter("is empty (an unset variable?): name a path, '.' for this"
                                 " folder", param_hint="'--out'")
    return Path(out)


def _a_directory(out: Path) -> Path:
    """`--out` is a directory (click.Path refuses a regular file, not a device or a pipe:
    `--out /dev/null` failed with a bare 'File exists' once the store was open)."""
    if out.exists() and not out.is_dir():
        raise click.BadParameter(
            f"{str(out)!r} exists and is not a directory: --out names a directory the"
            " TABLE.FORMAT files are written into (created if missing)", param_hint="'--out'")
    return out


def _export(obj: State, exporter: Exporter, out: Path, fmt: str, tenant: str | None,
            as_of: datetime | None, quiet: bool) -> None:
    progress = Progress("export", quiet=quiet)

    def report(table: str, rows: int) -> None:
        progress.update(f"{table} {counted(rows, 'row')}", count=rows)

    made_out = not out.exists()
    written = exporter.export(out, fmt, tenant=tenant, as_of=as_of, progress=report)
    progress.finish()
    if not any(item.rows for item in written):
        from mot.cli.projection_commands import require_tenant

        try:
            require_tenant(obj.services, tenant)
        except click.ClickException:
            for item in written:  # a misspelt tenant's empty files pass for a tenant's export
                item.path.unlink(missing_ok=True)
            if made_out and not any(out.iterdir()):
                out.rmdir()  # nor is the folder it made left behind
            raise
    for item in written:
        click.echo(f"{item.path}  {counted(item.rows, 'row')}")


class _ArrowLoad:
    """Imports what a Parquet export runs on (pyarrow, its Parquet writer, the store's ADBC
    driver) in a thread of its own, started before the store is opened.

    pyarrow is imported without numpy when nothing has imported either yet: numpy is
    optional to pyarrow (it tries `import numpy` and goes without), the export never turns
    a column into numpy, and numpy's import was a tenth of the export's start-up
    (bench/NOTES.md). numpy is refused to this thread alone (`_NumpyRefused`): the command's
    own thread opens the store meanwhile, and psycopg takes a `numpy` entry in sys.modules
    for numpy itself (a None there failed the pool's connections, and the export with them)."""

    def __init__(self, store: str | None) -> None:
        import os
        import threading

        from mot.bootstrap import is_postgres, store_url

        # Arrow's default pool is chosen from this variable when first used, so it is set
        # before pyarrow's import, and before this command starts a thread (setenv beside
        # another thread's getenv is unsafe); a user's own choice stays.
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", _arrow_allocator())
        self.postgres = is_postgres(store_url(store))
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._load, name="export-imports", daemon=True)
        self.refusal = _NumpyRefused.installed()  # before the thread starts: sys.meta_path
        self.thread.start()

    def _load(self) -> None:
        import sys

        try:
            with self.refusal.in_this_thread(
                    "numpy" not in sys.modules and "pyarrow" not in sys.modules):
                import pyarrow._parquet  # noqa: F401  # the writer alone (service/export.py)
            import adbc_driver_manager  # noqa: F401

            if self.postgres:
                import adbc_driver_postgresql  # noqa: F401
            else:
                import adbc_driver_sqlite  # noqa: F401
        except BaseException as error:  # raised in the command's thread, by `wait`
            self.error = error

    def wait(self) -> None:
        self.thread.join()
        if self.error is not None:
            raise self.error


def _arrow_allocator() -> str:
    """The allocator of Arrow's default pool for an export: jemalloc where pyarrow is built
    with it (its Linux wheels), else the C library's malloc; not the wheels' default,
    mimalloc, whose heaps, one per thread of the export, held ~40 MB more at its peak and
    cost more CPU in the kernel (page faults), with the files byte for byte the same
    (bench/NOTES.md). Read from the build's configuration header: asking pyarrow
    (`supported_memory_backends`) needs its import, which fixes the pool; naming a backend
    the build lacks makes Arrow print a warning."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("pyarrow")
    if spec is not None and spec.origin is not None:
        config = Path(spec.origin).parent / "include" / "arrow" / "util" / "config.h"
        try:
            if "#define ARROW_JEMALLOC\n" in config.read_text(errors="replace"):
                return "jemalloc"
        except OSError:
            pass
    return "system"


class _NumpyRefused:
    """An import finder that refuses `numpy` to the threads inside `in_this_thread` and
    leaves every other thread's imports alone: numpy is absent to them, or there whole,
    never a placeholder in sys.modules."""

    def __init__(self) -> None:
        self.threads: set[int] = set()

    @classmethod
    def installed(cls) -> _NumpyRefused:
        """The process's finder, put first on sys.meta_path on first use (from the command's
        thread, before the loading thread starts: the list is not changed while another
        thread may be walking it)."""
        import sys

        for finder in sys.meta_path:
            if isinstance(finder, cls):
                return finder
        finder = cls()
        sys.meta_path.insert(0, finder)
        return finder

    def find_spec(self, name: str, path: object, target: object = None) -> None:
        import threading

        if name == "numpy" and threading.get_ident() in self.threads:
            raise ModuleNotFoundError("numpy is left out of the Parquet export", name=name)
        return None

    @contextmanager
    def in_this_thread(self, refuse: bool) -> Iterator[None]:
        """numpy refused to this thread within (when `refuse`)."""
        import threading

        ident = threading.get_ident()
        if refuse:
            self.threads.add(ident)
        try:
            yield
        finally:
            self.threads.discard(ident)


@click.command("report")
@click.option("--tenant", help="Only this tenant (default: every tenant, a section each).")
@click.option("--out", "out", type=click.Path(dir_okay=False), callback=lambda _ctx, _param,
              value: _not_empty(value), default="report.html", show_default=True,
              help="The HTML file to write ('-': stdout).")
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
    from mot.domain.timefmt import reversed_window

    backwards = reversed_window(since, until)
    if backwards is not None:  # an empty page would pass for a quiet period
        raise click.UsageError(f"--since/--until: {backwards}")
    services = obj.services
    if not no_refresh:
        services.projections.project()
    page = services.report(tenant=tenant, since=since, until=until)
    if tenant is not None and 'data-tenant="' not in page:
        from mot.cli.projection_commands import no_such_tenant

        raise no_such_tenant(services, tenant)
    if str(out) == "-":
        click.echo(page, nl=False)
        return
    out.write_text(page, encoding="utf-8")
    click.echo(f"wrote {out} ({len(page.encode()):,} bytes)")


COMMANDS = [export, report]
