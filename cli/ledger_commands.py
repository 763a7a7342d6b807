"""Commands that write or read the ledger itself: import, show, log, quarantine."""

from __future__ import annotations

import sys
from typing import Any

import click
import orjson

from mot.cli.context import State, creates_store, pass_state
from mot.cli.output import format_option, render
from mot.cli.params import ROW_ID, Choice, count, whole
from mot.cli.progress import Progress
from mot.wording import counted

# mot.service.ledger's DEFAULT_BATCH and DEFAULT_COMMIT, spelled out (as the vendor names below)
# so that `mot --help` loads no validation code; a test holds them equal.
# The keys of mot.adapters.vendors.SOURCES (spelled out so that `mot --help` imports no mapping).
VENDOR_NAMES = ["hubspot", "salesforce", "zendesk", "mentions", "x"]
DEFAULT_CONFIG = "mot.toml"


class RejectLimitType(click.ParamType[Any]):
    """`--max-rejects N|P%`."""

    name = "N|P%"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from mot.service.importing import RejectLimit

        if isinstance(value, RejectLimit):
            return value
        try:
            return RejectLimit.parse(str(value))
        except ValueError as error:
            self.fail(str(error), param, ctx)


@click.command("import")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--format", "fmt", type=Choice(["auto", "jsonl", "csv"]), default="auto",
              show_default=True, help="Input format; auto picks csv for *.csv[.gz], else jsonl.")
@click.option("--from", "vendor", type=Choice(VENDOR_NAMES), default=None,
              help="Read the records of this source system (its API's JSON, or its CSV export) and "
              "map them to moments; see docs/sources.md.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="The mapping configuration for --from (tenant, teams of owners, queues, groups, "
              "mailboxes, handles) [default: ./mot.toml when present].")
@click.option("--max-rejects", type=RejectLimitType(), default=None,
              help="Fail (exit 1) when more messages than this are rejected: a count (0: any) or "
              "a share of those read (5%). What was valid is recorded all the same, unless "
              "--all-or-nothing.")
@click.option("--all-or-nothing", is_flag=True,
              help="Record nothing when the --max-rejects limit (default 0) is passed or an input "
              "fails part-way: the whole import is one transaction. Memory stays bounded, but "
              "nothing is committed until the end: on SQLite the write-ahead log grows to the "
              "size of the import on disk and other writers wait; on PostgreSQL it is one long "
              "transaction. A crash or Ctrl-C records nothing either.")
@click.option("--dry-run", is_flag=True,
              help="Map and check the messages, print them as wire JSONL on stdout and a summary on "
              "stderr; record nothing (the store is not opened).")
@click.option("--batch-size", type=whole(1, 100_000), default=1000,
              show_default=True, help="Messages validated and appended together.")
@click.option("--commit-every", type=whole(1, 1_000_000), default=50_000,
              show_default=True,
              help="Messages per transaction: batches commit together once this many are in. "
              "A crash loses only the uncommitted ones, and importing again puts them in.")
@click.option("--workers", type=whole(0, 64), default=None,
              help="Processes that validate the next batches while this one appends; 0 validates "
              "here. [default: one per spare CPU, at most 2, for a file over 8 MB or stdin]")
@click.option("--max-line-bytes", type=whole(1024), default=8 * 1024 * 1024,
              show_default=True,
              help="The longest line read: a longer one goes to the quarantine as its first "
              "kilobyte with its line number, and is never held in memory whole.")
@click.option("--summary-json", is_flag=True, help="Print the final summary as one JSON object.")
@click.option("--quiet", "-q", is_flag=True, help="No progress and no hints on standard error.")
@pass_state
@creates_store
def import_(obj: State, files: tuple[str, ...], fmt: str, vendor: str | None, config_path: str | None,
            max_rejects: Any, all_or_nothing: bool, dry_run: bool, batch_size: int,
            commit_every: int, workers: int | None, max_line_bytes: int, summary_json: bool,
            quiet: bool) -> None:
    """Record moments, amendments and retractions from JSONL or CSV files (`-` for stdin).

    With --from SOURCE (hubspot, salesforce, zendesk, mentions, x) the files hold that
    system's own records, mapped to moments as docs/sources.md says; records that cannot
    be mapped go to the quarantine with the reason.

    Every input is checked before anything is recorded: that it can be read, a CSV
    header (unknown columns are named, with the nearest known ones), and that its first
    lines are what --format and --from say. Lines end at LF, CRLF or CR; UTF-8 (with or
    without a byte order mark), UTF-16 and UTF-32 are read.

    Idempotent: importing a file again records nothing twice. Rejected lines go to the
    quarantine with their origin and the reason; the exit status is 0 even then, unless
    --max-rejects says otherwise. An input that ends part-way (a truncated gzip) stops
    the import after recording what came before it (exit 1); Ctrl-C stops it with what
    was committed (exit 130). Running the same command again then records the rest.
    A first import that fails having recorded nothing leaves no store behind.

    \b
    Examples:
      mot import moments.jsonl more.jsonl.gz
      mot import --format csv export.txt
      mot import --from zendesk tickets.json
      mot import crm-export.csv --max-rejects 1%
      mot sample 100 | mot import -
    """
    from mot.service.importing import ImportOptions, ImportStopped

    inputs = _import_inputs(files, fmt, vendor, config_path, max_line_bytes)
    stats = inputs[0].stats
    options = ImportOptions(batch_size=batch_size, commit_every=commit_every, workers=workers,
                            max_rejects=max_rejects, all_or_nothing=all_or_nothing)
    if dry_run:
        _dry_run(inputs, stats, options, summary_json)
        return
    from mot.service.importing import ImportJob

    progress = Progress("import", quiet=quiet)
    job = ImportJob(obj.services.ledger, options, progress=lambda report, done: progress.update(
        _progress_line(report), done=done, count=report.lines))
    try:
        report = job.run(inputs)
    except ImportStopped as stop:
        progress.finish()
        _print_summary(stop.report, stats, summary_json, quiet, stopped=stop,
                       rolled_back=all_or_nothing)
        raise _stop_error(stop) from None
    progress.finish()
    _print_summary(report, stats, summary_json, quiet)
    if not quiet:
        _warn_if_nothing_read(report, stats)
    if options.limit is None:
        _warn_if_mostly_rejected(report.summary)


def _import_inputs(files: tuple[str, ...], fmt: str, vendor: str | None, config_path: str | None,
                   max_line: int) -> list[Any]:
    """The inputs, every one checked before anything is recorded (one error lists them all)."""
    from mot.adapters.sources.inputs import FileInput, is_csv_path
    from mot.adapters.sources.vendor import VendorStats

    if files.count("-") > 1:
        raise click.UsageError("standard input (-) can be read only once")
    source, config = _vendor_setup(vendor, config_path)
    stats = VendorStats(source.name) if source is not None else None
    inputs = [
        FileInput(path, "csv" if fmt == "csv" or (fmt == "auto" and is_csv_path(path)) else "jsonl",
                  source, config, stats, max_line)
        for path in files
    ]
    problems = [problem for problem in (i.check() for i in inputs) if problem is not None]
    if problems:
        for i in inputs:
            i.close()
        if len(problems) == 1:
            raise click.ClickException(problems[0])
        raise click.ClickException(
            f"{len(problems)} of the {len(inputs)} inputs cannot be imported; nothing was recorded:\n"
            + "\n".join(f"  {problem}" for problem in problems))
    return inputs


def _progress_line(report: Any) -> str:
    s = report.summary
    blank = f" ({report.blank:,} blank)" if report.blank else ""
    return (f"{report.current}: {report.lines:,} lines{blank}, {s.read:,} read, "
            f"{s.recorded:,} recorded, {s.duplicates:,} duplicates, {s.quarantined:,} quarantined")


def _print_summary(report: Any, stats: Any, summary_json: bool, quiet: bool,
                   stopped: Any = None, rolled_back: bool = False) -> None:
    if summary_json:
        result: dict[str, Any] = dict(report.as_dict())
        if stats is not None:
            result["vendor"] = stats.as_dict()
        if stopped is not None:
            result["stopped"] = type(stopped).__name__
            result["error"] = str(stopped)
        click.echo(orjson.dumps(result).decode())
    else:
        blank = f", {counted(report.blank, 'blank line')} skipped" if report.blank else ""
        if rolled_back:
            # "read 0: recorded 0, ..." beside an error counting the messages read was two
            # answers to one question: what was committed is nothing, said so.
            click.echo("nothing was committed (--all-or-nothing: the import is one transaction)")
        else:
            committed = "committed before it stopped: " if stopped is not None else ""
            click.echo(f"{committed}{report.counts()} ({report.summary.seconds:.1f} s{blank})")
    if stats is not None and not quiet:
        for line in stats.report(bool(report.summary.suppressed)):
            click.echo(line, err=True)
    if report.summary.quarantined and not summary_json and not quiet:
        click.echo("see them with: mot quarantine list", err=True)


def _stop_error(stop: Any) -> click.ClickException:
    """Ctrl-C: status 130 and what was committed; any other stop: status 1 and why."""
    from mot.cli.interrupt import Interrupted
    from mot.service.importing import Interrupted as ImportInterrupted

    if isinstance(stop, ImportInterrupted):
        where = f" (reading {stop.report.current})" if stop.report.current else ""
        return Interrupted(
            f"{counted(stop.report.summary.read, 'message')} committed before it{where}; running "
            "the same command again is safe and continues: what is in counts as duplicates")
    return click.ClickException(str(stop))


def _warn_if_nothing_read(report: Any, stats: Any) -> None:
    """An input holding no message (an empty file, a CSV header alone) imported with status 0
    and "read 0: recorded 0, ..." as if it had been imported: likely not the file meant. Each
    such input is named, also among others that held messages (a --from file of records that
    are no moments is not warned about)."""
    if stats is not None and (report.summary.read or stats.records):
        return
    if report.summary.read:
        if report.empty:
            click.echo(f"warning: no message in {', '.join(report.empty)}: nothing imported from "
                       f"{'it' if len(report.empty) == 1 else 'them'} (an empty file, or a CSV "
                       "header alone; is it the file meant?)", err=True)
        return
    blank = f" (only {counted(report.blank, 'blank line')})" if report.blank else ""
    names = ", ".join(report.inputs) or "the input"
    click.echo(f"warning: no message in {names}{blank}: nothing to import (an empty file, or "
               "a CSV header alone; is it the file meant?)", err=True)


def _warn_if_mostly_rejected(summary: Any) -> None:
    """Without --max-rejects, an import that rejects most of what it read still exits 0: say so.
    The other likely cause is named too: a second `mot sample` of another size or seed into
    one store has the first one's source ids with other content, and the warning asked only
    about --format and --from."""
    if summary.read and summary.quarantined * 2 > summary.read:
        share = summary.quarantined * 100 / summary.read
        click.echo(
            f"warning: {summary.quarantined:,} of the {summary.read:,} messages read ({share:.0f}%) were "
            "quarantined (mot quarantine summary says why): is the input what --format and --from "
            "say, and not other versions of moments recorded before (another sample, say)? With "
            "--max-rejects (say 0 or 1%) such an import fails instead.", err=True)


def _vendor_setup(vendor: str | None, config_path: str | None) -> tuple[Any, Any]:
    """The vendor source and its configuration (./mot.toml when present and none is given)."""
    from mot.adapters.vendors import VendorConfig

    if vendor is None:
        if config_path is not None:
            raise click.UsageError("--config applies to imports --from a source system")
        return None, VendorConfig()
    from pathlib import Path

    from mot.adapters.vendors import SOURCES, ConfigError

    path = config_path if config_path is not None else (
        DEFAULT_CONFIG if Path(DEFAULT_CONFIG).is_file() else None)
    try:
        config = VendorConfig.load(path) if path is not None else VendorConfig()
    except ConfigError as error:
        raise click.ClickException(str(error)) from error
    return SOURCES[vendor], config


def _dry_run(inputs: list[Any], stats: Any, options: Any, summary_json: bool) -> None:
    """Check each message without the store: valid ones to stdout, a summary to stderr."""
    from mot.service.importing import preview

    out = sys.stdout.buffer
    previews: list[str] = []

    def valid(item: Any) -> None:
        out.write(item.message + b"\n")

    def rejected(item: Any, problem: str) -> None:
        previews.append(f"  would be quarantined: {item.origin}: {problem}")

    sys.stdout.flush()
    report = preview(inputs, valid, rejected)
    out.flush()
    total = report.summary
    if summary_json:
        result = {"dry_run": True, "read": total.read, "valid": total.recorded,
                  "quarantined": total.quarantined, "lines": report.lines, "blank": report.blank}
        if stats is not None:
            result["vendor"] = stats.as_dict()
        click.echo(orjson.dumps(result).decode(), err=True)
    else:
        if stats is not None:
            for line in stats.report():
                click.echo(line, err=True)
        for line in previews:
            click.echo(line, err=True)
        click.echo(
            f"dry run: {total.read:,} messages, {total.recorded:,} valid, {total.quarantined:,} would be "
            "quarantined; nothing recorded (duplicates and conflicts are only known to the ledger)",
            err=True,
        )
    failed = next((i.failure() for i in inputs if i.failure() is not None), None)
    if failed is not None:
        raise click.ClickException(failed)
    limit = options.limit
    if limit is not None and limit.passed(total.quarantined, total.read):
        raise click.ClickException(f"{total.quarantined:,} of {total.read:,} messages would be "
                                   f"rejected, over --max-rejects {limit}")


@click.command("show")
@click.argument("moment")
@click.option("--tenant", default=None,
              help="The moment's tenant (moment ids are per tenant; needed when several tenants "
                   "have the id; a SYSTEM:ID reference is resolved in it, default 'default').")
@format_option("text")
@pass_state
def show(obj: State, moment: str, tenant: str | None, fmt: str) -> None:
    """Show a moment, its amendments and its retraction.

    MOMENT is a moment id, or SYSTEM:ID naming the source record (with --tenant).
    The other formats give one record per event of the moment.

    \b
    Examples:
      mot show 16bd0db4-2a55-55b8-ace3-0dc423c60f4a    # in make demo's store
      mot show zendesk:ZD-100005 --tenant acme --format json   # the same moment
    """
    from mot.domain.ledger import AmbiguousMoment
    from mot.service.moments import is_moment_id, resolve_moment_id

    left_out = tenant is None
    if tenant is None and not is_moment_id(moment):
        tenant = "default"  # a SYSTEM:ID reference names a moment of the tenant it resolves in
    moment_id = resolve_moment_id(moment, tenant or "default")
    if moment_id is None:
        raise click.ClickException(f"{moment!r} is neither a moment id nor a SYSTEM:ID reference")
    try:
        records = obj.services.moments.records(moment_id, tenant)
    except AmbiguousMoment as error:
        raise click.ClickException(f"{error} with --tenant") from None
    if not records:
        where = "the ledger" if tenant is None else f"tenant {tenant!r}"
        if is_moment_id(moment):
            raise click.ClickException(f"no moment {moment_id} in {where}")
        # It named only the derived id, which the user never typed, and not the tenant's
        # default when --tenant was left out (the usual reason a reference is not found).
        from mot.cli.projection_commands import known_tenants

        hint = ""
        if left_out:
            known = ", ".join(t for t in known_tenants(obj.services) if t != tenant) or "none"
            hint = f"; without --tenant it is looked up in tenant 'default' (tenants: {known})"
        raise click.ClickException(f"no moment from the source record {moment!r} in {where} "
                                   f"(its moment id would be {moment_id}){hint}")
    if fmt != "text":
        render(records, fmt, ("version", "event", "recorded_at", "origin", "reason")
               if fmt == "table" else ())
        return
    from mot.wording import printable  # a reason and an origin are what senders wrote

    click.echo(f"moment {moment_id}")
    for record in records:
        line = f"  v{record['version']} {record['event']} at {record['recorded_at']}"
        line += f" from {record['origin']}"
        click.echo(printable(line))
        if record.get("reason"):
            click.echo(printable(f"     reason: {record['reason']}"))
        if record.get("set") is not None:
            click.echo(f"     set: {orjson.dumps(record['set']).decode()}")
    last = records[-1]
    if last["event"] == "retracted":
        click.echo("current: retracted (in no projection)")
    else:
        click.echo("current: " + orjson.dumps(last["moment"], option=orjson.OPT_INDENT_2).decode())


@click.group("quarantine")
def quarantine() -> None:
    """List, inspect, fix, replay and drop rejected messages.

    \b
    Examples:
      mot quarantine summary
      mot quarantine list --field channel
      mot quarantine fix 3
      mot quarantine replay --reason "no recorded moment"
    """


def _filters(command: Any) -> Any:
    """--field and --reason, shared by list, replay and drop."""
    command = click.option(
        "--reason", metavar="TEXT",
        help="Only messages whose reason contains TEXT (any case), e.g. 'not valid JSON'.")(command)
    return click.option(
        "--field", metavar="FIELD",
        help="Only messages rejected for FIELD (a dotted path such as source.id; one of their "
        "fields when there are several).")(command)


def _selected(obj: State, ids: tuple[int, ...], field: str | None, reason: str | None) -> list[int]:
    """The ids of the quarantined messages named by ids and filters; an id not in the
    quarantine is an error."""
    from mot.service.quarantine import NotQuarantined

    quarantine = obj.services.quarantine
    try:
        chosen = [e.id for e in quarantine.select(ids, field, reason)]
    except NotQuarantined as error:
        raise click.ClickException(f"{error} (see them with: mot quarantine list)") from None
    if not chosen:
        _say_why_none(quarantine, field, reason)
    return chosen


@quarantine.command("list")
@click.option("--limit", type=count(), default=None, help="At most this many rows.")
@_filters
@format_option()
@pass_state
def quarantine_list(obj: State, limit: int | None, field: str | None, reason: str | None,
                    fmt: str | None) -> None:
    """Rejected messages, oldest first: id, origin, field, reason, repeats.

    \b
    Examples:
      mot quarantine list
      mot quarantine list --field channel --format csv > channel-rejects.csv
    """
    quarantine = obj.services.quarantine
    entries = quarantine.entries(limit, field=field, reason=reason)
    if not entries:
        _say_why_none(quarantine, field, reason)
    render(
        [
            {"id": e.id, "origin": e.origin, "field": e.field, "reason": e.reason,
             "repeats": e.repeats, "first_seen": e.first_seen, "last_seen": e.last_seen,
             "raw": e.raw.decode("utf-8", "replace")}
            for e in entries
        ],
        fmt,
        columns=("id", "origin", "field", "reason", "repeats") if (fmt or "table") == "table" else (),
    )


def _say_why_none(quarantine: Any, field: str | None, reason: str | None) -> None:
    """On stderr, why `list`, `replay` or `drop` selected nothing. An empty answer alone did
    not say whether the filter was misspelt: fields are what the senders wrote, so name the
    ones there are (on stderr: stdout stays the format, or the command's one line)."""
    click.echo(_nothing_listed(quarantine.summary(), field, reason), err=True)


def _nothing_listed(summary: list[dict[str, Any]], field: str | None,
                    reason: str | None) -> str:
    """Why a quarantine command selects nothing: the quarantine is empty, or what the filters
    named is not in it (and the fields that are)."""
    from mot.wording import printable

    if not summary:
        return "the quarantine is empty"
    wanted = " and ".join(
        ([f"field {field!r}"] if field is not None else [])
        + ([f"a reason containing {reason!r}"] if reason is not None else []))
    # A message that is no JSON object has no field (''), which listed as an empty name
    # (" its fields: , chanel, ..." on make demo's store).
    fields = sorted({str(row["field"]) for row in summary if row["field"]})
    known = f"; its fields: {', '.join(fields)}" if fields else ""
    return printable(f"no quarantined message with {wanted}{known} "
                     "(mot quarantine summary counts them by field and reason)")


@quarantine.command("summary")
@format_option()
@pass_state
def quarantine_summary(obj: State, fmt: str | None) -> None:
    """Rejected messages grouped by field and reason, most frequent first.

    A message rejected for several fields counts under each. The reason is shown
    without the value each message sent (`got ...`), so one typo made a thousand
    times is one row; `did_you_mean` says the value meant and the values sent for it
    ('email' for 'emial', 'e-mail'); `example` is the id of one such message.

    \b
    Examples:
      mot quarantine summary
      mot quarantine replay --field channel   # after fixing the mapping upstream
    """
    from mot.cli.output import default_format

    fmt = fmt or default_format()  # piped: JSON alone, without the words a table ends with
    quarantine = obj.services.quarantine
    rows = quarantine.summary()
    if not rows:
        click.echo("the quarantine is empty", err=fmt != "table")
        if fmt == "table":
            return
    render(rows, fmt, columns=("field", "reason", "did_you_mean", "messages", "example"))
    if fmt == "table":
        click.echo(f"{counted(quarantine.count(), 'message')} in the quarantine")


@quarantine.command("show")
@click.argument("qid", type=ROW_ID, metavar="ID")
@pass_state
def quarantine_show(obj: State, qid: int) -> None:
    """One rejected message: its raw bytes, origin, reason and history.

    \b
    Example:
      mot quarantine show 3
    """
    e = obj.services.quarantine.get(qid)
    if e is None:
        raise click.ClickException(f"no quarantined message {qid}")
    from mot.wording import printable  # a field and a reason name what the sender wrote

    for label, value in (("id", e.id), ("origin", e.origin),
                         ("last seen", f"{e.last_origin} at {e.last_seen}"),
                         ("first seen", e.first_seen), ("repeats", e.repeats),
                         ("field", e.field or "(the whole message)"), ("reason", e.reason)):
        click.echo(printable(f"{label + ':':<12}{value}"))
    click.echo("raw:")
    _exact_or_shown(e.raw)
    if e.payload is not None:
        click.echo("as wire JSON:")
        _exact_or_shown(e.payload)
    sys.stdout.flush()


def _exact_or_shown(message: bytes) -> None:
    """A quarantined message's bytes: exact when piped; on a terminal, which anyone who can
    send a line would otherwise drive (escape sequences), what it would act on escaped."""
    if sys.stdout.isatty():
        from mot.wording import printable

        click.echo(printable(message.decode("utf-8", "backslashreplace")))
        return
    sys.stdout.flush()
    sys.stdout.buffer.write(message + b"\n")


@quarantine.command("replay")
@click.argument("ids", nargs=-1, type=ROW_ID, metavar="[ID...]")
@_filters
@pass_state
def quarantine_replay(obj: State, ids: tuple[int, ...], field: str | None,
                      reason: str | None) -> None:
    """Validate quarantined messages again (all, the given ids, or those the filters select);
    what goes in leaves the quarantine.

    An amendment that arrived before its moment goes in once the moment exists.
    An ID that is not in the quarantine is an error (nothing is replayed).

    \b
    Examples:
      mot quarantine replay
      mot quarantine replay 3 7
      mot quarantine replay --reason "no recorded moment"
    """
    quarantine = obj.services.quarantine
    chosen: list[int] | None = None
    if ids or field is not None or reason is not None:
        chosen = _selected(obj, ids, field, reason)
        if not chosen:
            click.echo("no quarantined message matches; nothing replayed")
            return
    summary = quarantine.replay(chosen)
    left = quarantine.count()
    click.echo(
        f"replayed {counted(summary.read, 'message')}: recorded {summary.recorded:,}, "
        f"amended {summary.amended:,}, retracted {summary.retracted:,}, "
        + (f"linked {summary.linked:,}, unlinked {summary.unlinked:,}, "
           if summary.linked or summary.unlinked else "")
        + f"duplicates {summary.duplicates:,}, still rejected {summary.quarantined:,}; "
        f"{counted(left, 'message')} in the quarantine"
    )


@quarantine.command("drop")
@click.argument("ids", nargs=-1, type=ROW_ID, metavar="[ID...]")
@_filters
@pass_state
def quarantine_drop(obj: State, ids: tuple[int, ...], field: str | None, reason: str | None) -> None:
    """Delete quarantined messages for good (after you have dealt with them): the given
    ids, or those the filters select (at least one of the two).

    \b
    Examples:
      mot quarantine drop 3 7
      mot quarantine drop --reason "not valid JSON"
    """
    if not ids and field is None and reason is None:
        raise click.UsageError("name the messages to drop: ID..., --field or --reason")
    quarantine = obj.services.quarantine
    dropped = quarantine.drop(_selected(obj, ids, field, reason))
    click.echo(f"dropped {counted(dropped, 'message')}; "
               f"{counted(quarantine.count(), 'message')} in the quarantine")


@quarantine.command("fix")
@click.argument("qid", type=ROW_ID, metavar="ID")
@click.argument("corrected", type=click.File("rb"), required=False, metavar="[FILE]")
@pass_state
def quarantine_fix(obj: State, qid: int, corrected: Any) -> None:
    """Replace a quarantined message with a corrected one and replay it.

    The corrected JSON comes from FILE (`-` for stdin), or from $EDITOR when
    FILE is omitted. A correction that is itself invalid changes nothing (every
    error is listed); one the ledger still rejects (its moment is not recorded
    yet, say) stays in the quarantine in place of the original. A correction
    without `tenant` keeps the tenant the message was sent for (an HTTP token's).

    \b
    Examples:
      mot quarantine fix 3                      # opens $EDITOR
      mot quarantine fix 3 corrected.json
    """
    quarantine = obj.services.quarantine
    entry = quarantine.get(qid)
    if entry is None:
        raise click.ClickException(f"no quarantined message {qid}")
    if corrected is not None:
        payload = corrected.read().strip()
    else:
        edited = click.edit(entry.message.decode("utf-8", "replace"))
        if edited is None:
            raise click.ClickException("no change made")
        payload = edited.strip().encode()
    fix = quarantine.fix(qid, payload)
    if fix.invalid is not None:
        raise click.ClickException(
            f"the corrected message is not valid; quarantined message {qid} is unchanged: "
            f"{fix.invalid.reason}")
    if fix.still_rejected is not None:
        kept = ("" if fix.kept_as == qid else
                f" (merged into quarantined message {fix.kept_as}, which held the same message)")
        raise click.ClickException(
            f"still rejected: {fix.still_rejected}; the corrected message stays in the "
            f"quarantine{kept} for a later `mot quarantine replay`")
    summary = fix.summary
    click.echo(f"fixed and replayed {qid}: recorded {summary.recorded}, amended {summary.amended},"
               f" retracted {summary.retracted}, duplicates {summary.duplicates}"
               + (f", suppressed {summary.suppressed} (it names an erased person)"
                  if summary.suppressed else ""))


COMMANDS = [import_, show, quarantine]
