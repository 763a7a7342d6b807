"""Commands that write or read the ledger itself: import, show, log, quarantine."""

from __future__ import annotations

import sys
from typing import Any

import click
import orjson

from mot.cli.output import format_option, render
from mot.cli.progress import Progress
from mot.wording import counted

# mot.service.ledger's DEFAULT_BATCH and DEFAULT_COMMIT, spelled out (as the vendor names below)
# so that `mot --help` loads no validation code; a test holds them equal.
# The keys of mot.adapters.vendors.SOURCES (spelled out so that `mot --help` imports no mapping).
VENDOR_NAMES = ["hubspot", "salesforce", "zendesk", "mentions", "x"]
DEFAULT_CONFIG = "mot.toml"


@click.command("import")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--format", "fmt", type=click.Choice(["auto", "jsonl", "csv"]), default="auto",
              show_default=True, help="Input format; auto picks csv for *.csv[.gz], else jsonl.")
@click.option("--from", "vendor", type=click.Choice(VENDOR_NAMES), default=None,
              help="Read the records of this source system (its API's JSON, or its CSV export) and "
              "map them to moments; see docs/sources.md.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="The mapping configuration for --from (tenant, teams of owners, queues, groups, "
              "mailboxes, handles) [default: ./mot.toml when present].")
@click.option("--dry-run", is_flag=True,
              help="Map and check the messages, print them as wire JSONL on stdout and a summary on "
              "stderr; record nothing (the store is not opened).")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=1000,
              show_default=True, help="Messages validated and appended together.")
@click.option("--commit-every", type=click.IntRange(1, 1_000_000), default=20_000,
              show_default=True,
              help="Messages per transaction: batches commit together once this many are in. "
              "A crash loses only the uncommitted ones, and importing again puts them in.")
@click.option("--workers", type=click.IntRange(0, 64), default=None,
              help="Processes that validate the next batches while this one appends; 0 validates "
              "here. [default: one per spare CPU, at most 2, for a file over 8 MB or stdin]")
@click.option("--summary-json", is_flag=True, help="Print the final summary as one JSON object.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on standard error.")
@click.pass_obj
def import_(obj: Any, files: tuple[str, ...], fmt: str, vendor: str | None, config_path: str | None,
            dry_run: bool, batch_size: int, commit_every: int, workers: int | None,
            summary_json: bool, quiet: bool) -> None:
    """Record moments, amendments and retractions from JSONL or CSV files (`-` for stdin).

    With --from SOURCE (hubspot, salesforce, zendesk, mentions, x) the files hold that
    system's own records, mapped to moments as docs/sources.md says; records that cannot
    be mapped go to the quarantine with the reason.

    Idempotent: importing a file again records nothing twice. Rejected lines go
    to the quarantine with their origin and the reason; the exit status is 0
    even then, and non-zero only when the import could not run.

    \b
    Examples:
      mot import moments.jsonl more.jsonl.gz
      mot import --format csv export.txt
      mot import --from zendesk tickets.json
      mot sample 100 | mot import -
    """
    from mot.adapters.sources.files import csv_records, jsonl_records, open_source
    from mot.adapters.sources.vendor import VendorStats, vendor_records
    from mot.service.ledger import Summary
    from mot.service.workers import WorkerFailed

    source, config = _vendor_setup(vendor, config_path)
    stats = VendorStats(source.name) if source is not None else None
    total = Summary()
    progress = Progress("import", quiet=quiet or dry_run)
    previews: list[str] = []
    for path in files:
        try:
            opened = open_source(path)
        except OSError as error:
            raise click.ClickException(f"cannot read {path}: {error.strerror or error}") from error
        as_csv = fmt == "csv" or (fmt == "auto" and path.lower().removesuffix(".gz").endswith(".csv"))
        if source is not None and stats is not None:
            wanted = "csv" if as_csv else "jsonl"
            if wanted not in source.formats:
                opened.close()
                raise click.ClickException(
                    f"{path}: --from {source.name} reads {' or '.join(source.formats)}, not {wanted}")
            records = vendor_records(opened, source, config, wanted, stats)
        else:
            records = csv_records(opened) if as_csv else jsonl_records(opened)

        def report(summary: Summary, opened: Any = opened) -> None:
            position, size = opened.position(), opened.size
            done = position / size if position is not None and size else None
            progress.update(
                f"{opened.name}: {total.read + summary.read:,} read, "
                f"{total.recorded + summary.recorded:,} recorded, "
                f"{total.duplicates + summary.duplicates:,} duplicates, "
                f"{total.quarantined + summary.quarantined:,} quarantined",
                done=done, count=total.read + summary.read,
            )

        try:
            if dry_run:
                summary = _dry_run(records, previews)
            else:
                summary = obj.services.ledger.record_stream(records, batch_size=batch_size,
                                                            commit_every=commit_every,
                                                            workers=_workers(workers, opened),
                                                            progress=report)
        except UnicodeDecodeError as error:
            raise click.ClickException(f"{path}: not UTF-8 text ({error.reason})") from error
        except WorkerFailed as error:
            raise click.ClickException(f"{path}: {error}") from error
        finally:
            opened.close()
        total.merge(summary)
    progress.finish()
    if dry_run:
        _dry_run_summary(total, stats, previews, summary_json)
        return
    if summary_json:
        result: dict[str, Any] = dict(total.as_dict())
        if stats is not None:
            result["vendor"] = stats.as_dict()
        click.echo(orjson.dumps(result).decode())
    else:
        click.echo(
            f"read {total.read:,}: recorded {total.recorded:,}, amended {total.amended:,}, "
            f"retracted {total.retracted:,}, duplicates {total.duplicates:,}, "
            f"quarantined {total.quarantined:,} ({total.seconds:.1f} s)"
        )
    if stats is not None and not quiet:
        for line in stats.report():
            click.echo(line, err=True)
    if total.quarantined and not summary_json:
        click.echo("see them with: mot quarantine list", err=True)


def _vendor_setup(vendor: str | None, config_path: str | None) -> tuple[Any, Any]:
    """The vendor source and its configuration (./mot.toml when present and none is given)."""
    if vendor is None:
        if config_path is not None:
            raise click.UsageError("--config applies to imports --from a source system")
        return None, None
    from pathlib import Path

    from mot.adapters.vendors import SOURCES, ConfigError, VendorConfig

    path = config_path if config_path is not None else (
        DEFAULT_CONFIG if Path(DEFAULT_CONFIG).is_file() else None)
    try:
        config = VendorConfig.load(path) if path is not None else VendorConfig()
    except ConfigError as error:
        raise click.ClickException(str(error)) from error
    return SOURCES[vendor], config


def _dry_run(records: Any, previews: list[str]) -> Any:
    """Check each message without the store: valid ones to stdout, the others to `previews`."""
    from mot.adapters.sources.vendor import preview_problem
    from mot.domain.timefmt import utc_now
    from mot.service.ledger import Summary

    summary = Summary()
    now = utc_now()
    out = sys.stdout.buffer
    for item in records:
        summary.read += 1
        problem = preview_problem(item, now)
        if problem is None:
            summary.recorded += 1
            sys.stdout.flush()
            out.write(item.message + b"\n")
        else:
            summary.quarantined += 1
            previews.append(f"  would be quarantined: {item.origin}: {problem}")
    out.flush()
    return summary


def _dry_run_summary(total: Any, stats: Any, previews: list[str], summary_json: bool) -> None:
    if summary_json:
        result = {"dry_run": True, "read": total.read, "valid": total.recorded,
                  "quarantined": total.quarantined}
        if stats is not None:
            result["vendor"] = stats.as_dict()
        click.echo(orjson.dumps(result).decode(), err=True)
        return
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


@click.command("show")
@click.argument("moment")
@click.option("--tenant", default=None,
              help="The moment's tenant (moment ids are per tenant; needed when several tenants "
                   "have the id; a SYSTEM:ID reference is resolved in it, default 'default').")
@format_option("text")
@click.pass_obj
def show(obj: Any, moment: str, tenant: str | None, fmt: str) -> None:
    """Show a moment, its amendments and its retraction.

    MOMENT is a moment id, or SYSTEM:ID naming the source record (with --tenant).
    The other formats give one record per event of the moment.

    \b
    Examples:
      mot show 6f1c9e2a-3b4d-4c5e-8f70-123456789abc
      mot show zendesk:ZD-777 --tenant acme --format json
    """
    from mot.domain.ledger import AmbiguousMoment
    from mot.service.moments import is_moment_id, resolve_moment_id

    if tenant is None and not is_moment_id(moment):
        tenant = "default"  # a SYSTEM:ID reference names a moment of the tenant it resolves in
    moment_id = resolve_moment_id(moment, tenant or "default")
    if moment_id is None:
        raise click.ClickException(f"{moment!r} is neither a moment id nor a SYSTEM:ID reference")
    try:
        history = obj.services.ledger_store.stream(moment_id, tenant)
    except AmbiguousMoment as error:
        raise click.ClickException(f"{error} with --tenant") from None
    if not history:
        where = "the ledger" if tenant is None else f"tenant {tenant!r}"
        raise click.ClickException(f"no moment {moment_id} in {where}")
    from mot.service.moments import history_records

    records = history_records(history)
    if fmt != "text":
        render(records, fmt, ("version", "event", "recorded_at", "origin", "reason")
               if fmt == "table" else ())
        return
    click.echo(f"moment {moment_id}")
    for record in records:
        line = f"  v{record['version']} {record['event']} at {record['recorded_at']}"
        line += f" from {record['origin']}"
        click.echo(line)
        if record.get("reason"):
            click.echo(f"     reason: {record['reason']}")
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


def _selected(store: Any, ids: tuple[int, ...], field: str | None, reason: str | None) -> list[Any]:
    """The quarantined messages named by ids and filters; an id not in the quarantine is an error."""
    entries: list[Any] = store.quarantine(ids=list(ids) if ids else None, field=field,
                                          reason=reason)
    if ids:
        missing = sorted(set(ids) - {e.id for e in store.quarantine(ids=list(ids))})
        if missing:
            raise click.ClickException(
                f"no quarantined message {', '.join(map(str, missing))} "
                "(see them with: mot quarantine list)")
    return entries


@quarantine.command("list")
@click.option("--limit", type=click.IntRange(1), default=None, help="At most this many rows.")
@_filters
@format_option()
@click.pass_obj
def quarantine_list(obj: Any, limit: int | None, field: str | None, reason: str | None,
                    fmt: str | None) -> None:
    """Rejected messages, oldest first: id, origin, field, reason, repeats.

    \b
    Examples:
      mot quarantine list
      mot quarantine list --field channel --format csv > channel-rejects.csv
    """
    entries = obj.services.ledger_store.quarantine(limit=limit, field=field, reason=reason)
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


@quarantine.command("summary")
@format_option()
@click.pass_obj
def quarantine_summary(obj: Any, fmt: str | None) -> None:
    """Rejected messages grouped by field and reason, most frequent first.

    A message rejected for several fields counts under each. The reason is shown
    without the value each message sent (`got ...`), so one typo made a thousand
    times is one row; `example` is the id of one such message.

    \b
    Examples:
      mot quarantine summary
      mot quarantine replay --field channel     # after fixing the mapping upstream
    """
    from mot.domain.quarantine import summarise

    store = obj.services.ledger_store
    rows = summarise(store.quarantine_reasons())
    if not rows and (fmt or "table") == "table":
        click.echo("the quarantine is empty")
        return
    render(rows, fmt, columns=("field", "reason", "messages", "example"))
    if (fmt or "table") == "table":
        click.echo(f"{counted(store.quarantine_count(), 'message')} in the quarantine")


@quarantine.command("show")
@click.argument("qid", type=int, metavar="ID")
@click.pass_obj
def quarantine_show(obj: Any, qid: int) -> None:
    """One rejected message: its raw bytes, origin, reason and history.

    \b
    Example:
      mot quarantine show 3
    """
    entries = obj.services.ledger_store.quarantine(ids=[qid])
    if not entries:
        raise click.ClickException(f"no quarantined message {qid}")
    e = entries[0]
    click.echo(f"id:         {e.id}\norigin:     {e.origin}\nlast seen:  {e.last_origin}"
               f" at {e.last_seen}\nfirst seen: {e.first_seen}\nrepeats:    {e.repeats}\n"
               f"field:      {e.field or '(the whole message)'}\nreason:     {e.reason}")
    click.echo("raw:")
    sys.stdout.flush()
    sys.stdout.buffer.write(e.raw + b"\n")
    if e.payload is not None:
        click.echo("as wire JSON:")
        sys.stdout.flush()
        sys.stdout.buffer.write(e.payload + b"\n")
    sys.stdout.flush()


@quarantine.command("replay")
@click.argument("ids", nargs=-1, type=int, metavar="[ID...]")
@_filters
@click.pass_obj
def quarantine_replay(obj: Any, ids: tuple[int, ...], field: str | None,
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
    store = obj.services.ledger_store
    chosen: list[int] | None = None
    if ids or field is not None or reason is not None:
        chosen = [e.id for e in _selected(store, ids, field, reason)]
        if not chosen:
            click.echo("no quarantined message matches; nothing replayed")
            return
    summary = obj.services.ledger.replay_quarantine(chosen)
    left = store.quarantine_count()
    click.echo(
        f"replayed {counted(summary.read, 'message')}: recorded {summary.recorded:,}, "
        f"amended {summary.amended:,}, retracted {summary.retracted:,}, "
        f"duplicates {summary.duplicates:,}, still rejected {summary.quarantined:,}; "
        f"{counted(left, 'message')} in the quarantine"
    )


@quarantine.command("drop")
@click.argument("ids", nargs=-1, type=int, metavar="[ID...]")
@_filters
@click.pass_obj
def quarantine_drop(obj: Any, ids: tuple[int, ...], field: str | None, reason: str | None) -> None:
    """Delete quarantined messages for good (after you have dealt with them): the given
    ids, or those the filters select (at least one of the two).

    \b
    Examples:
      mot quarantine drop 3 7
      mot quarantine drop --reason "not valid JSON"
    """
    if not ids and field is None and reason is None:
        raise click.UsageError("name the messages to drop: ID..., --field or --reason")
    store = obj.services.ledger_store
    chosen = [e.id for e in _selected(store, ids, field, reason)]
    dropped = store.drop_quarantined(chosen) if chosen else 0
    click.echo(f"dropped {counted(dropped, 'message')}; "
               f"{counted(store.quarantine_count(), 'message')} in the quarantine")


@quarantine.command("fix")
@click.argument("qid", type=int, metavar="ID")
@click.argument("corrected", type=click.File("rb"), required=False, metavar="[FILE]")
@click.pass_obj
def quarantine_fix(obj: Any, qid: int, corrected: Any) -> None:
    """Replace a quarantined message with a corrected one and replay it.

    The corrected JSON comes from FILE (`-` for stdin), or from $EDITOR when
    FILE is omitted. A correction that is itself invalid changes nothing (every
    error is listed); one the ledger still rejects (its moment is not recorded
    yet, say) stays in the quarantine in place of the original.

    \b
    Examples:
      mot quarantine fix 3                      # opens $EDITOR
      mot quarantine fix 3 corrected.json
    """
    store = obj.services.ledger_store
    entries = store.quarantine(ids=[qid])
    if not entries:
        raise click.ClickException(f"no quarantined message {qid}")
    if corrected is not None:
        payload = corrected.read().strip()
    else:
        edited = click.edit(entries[0].message.decode("utf-8", "replace"))
        if edited is None:
            raise click.ClickException("no change made")
        payload = edited.strip().encode()
    fix = obj.services.ledger.fix_quarantined(qid, payload)
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
               f" retracted {summary.retracted}, duplicates {summary.duplicates}")


# A worker process takes a few hundred milliseconds to start: worth it from some 30,000 lines.
PARALLEL_FROM_BYTES = 8 * 1024 * 1024


def _workers(asked: int | None, opened: Any) -> int:
    if asked is not None:
        return asked
    from mot.service.parsing import default_workers

    large = opened.size is None or opened.size > PARALLEL_FROM_BYTES
    return default_workers() if large else 0


COMMANDS = [import_, show, quarantine]
