"""Commands on the projections: project, replay, status, query, log, timeline."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from mot.cli.context import State, pass_state
from mot.cli.output import format_option, render
from mot.cli.params import SECONDS, Choice, Timestamp, count, whole
from mot.cli.progress import Progress
from mot.wording import counted

if TYPE_CHECKING:
    from mot.bootstrap import Services
    from mot.service.targets import Targets

PROJECTIONS = ("relationships", "reciprocity", "transitions", "amplifications", "teams",
               "listening", "responses", "persons")
QUERIES = (*PROJECTIONS, "response-times")  # mot.service.queries' QUERY_NAMES (a test holds them)
REQUEST_KINDS = ("question", "complaint", "feedback")
STAGES = ("stranger", "acquainted", "engaged", "loyal", "advocate", "detractor")
# mot.domain.vocabulary's FUNCTIONS, spelled out so that loading this module loads no domain
# code (a test holds them equal).
FUNCTIONS = ("service", "product", "sales", "logistics", "hr", "marketing", "leadership", "other")


def _reporter(progress: Progress) -> Any:
    def report(phase: str, done: int, total: int) -> None:
        if not done and not total:  # a phase with nothing to count (waiting for a lock)
            progress.update(phase, force=True)
        elif total:
            progress.update(f"{phase} {done:,}/{total:,}", done=done / total if total else None,
                            count=done)
        else:
            progress.update(f"{phase} {done:,}", count=done)
    return report


def _interruptible(service: Any, rerun: str, progress: Progress) -> Any:
    """Ctrl-C: status 130 and how far the projections (or an unfinished rebuild) got."""
    from mot.cli.interrupt import interruptible

    def committed() -> str:
        progress.finish()
        s = service.status()
        if s.rebuild is not None:
            position, phase, target = s.rebuild
            of = f" of {target:,}" if target else ""
            return (f"the rebuild is saved in its {phase} phase at ledger position "
                    f"{position:,}{of}")
        return f"projections are at ledger position {s.position:,} of {s.head:,}"

    return interruptible(committed, rerun)


@contextmanager
def _worker_errors() -> Iterator[None]:
    """A worker process that died, or a rebuild that found its tables moved on, is one line
    saying what to do, not a traceback."""
    from mot.projections.engine import RebuildInterrupted
    from mot.service.workers import WorkerFailed

    try:
        yield
    except (WorkerFailed, RebuildInterrupted) as error:
        raise click.ClickException(str(error)) from error


@click.command("project")
@click.option("--follow", "-f", is_flag=True,
              help="Keep projecting as moments arrive (stop with Ctrl-C or SIGTERM).")
@click.option("--poll", type=SECONDS, default=0.5, show_default=True,
              help="Seconds between looks at the ledger when following.")
@click.option("--page-size", type=count(), default=1000, show_default=True,
              help="Events applied per transaction: smaller pages commit more often.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on standard error.")
@pass_state
def project(obj: State, follow: bool, poll: float, page_size: int, quiet: bool) -> None:
    """Bring every projection up to date with the ledger, then exit (or keep going with --follow).

    Each page of events is applied in one transaction with the projection's
    position, so an interrupted run loses and repeats nothing.

    \b
    Examples:
      mot project
      mot project --follow   # beside mot kafka ingest, or mot serve --no-project
    """
    service = obj.services.projections
    progress = Progress("project", quiet=quiet)
    if not follow:
        # A first projection of a long ledger is a rebuild, which may fold in workers.
        with _interruptible(service, "mot project", progress), _worker_errors():
            applied = service.project(_reporter(progress), page_size=page_size)
        progress.finish()
        status = service.status()
        click.echo(f"applied {counted(applied, 'event')}; projections at {status.position:,} of "
                   f"{status.head:,}")
        return
    import signal  # only when following: a query's start-up does without it

    stopping = {"now": False}

    def stop(signum: int, frame: Any) -> None:
        stopping["now"] = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    total = {"applied": 0}
    overdue = obj.services.overdue_check(warn=lambda line: click.echo(line, err=True))

    def count(events: int) -> None:
        total["applied"] += events
        overdue.changed()
        progress.update(f"following: {counted(total['applied'], 'event')} applied", force=True)

    from mot.service.resilience import Retry

    retry = Retry("mot project --follow", obj.services.unavailable,
                  lambda line: click.echo(line, err=True))

    def should_stop() -> bool:
        # Time, not a moment, makes a request overdue (SPEC §3.6): checked between rounds.
        if not stopping["now"] and overdue.due():
            try:
                overdue.run()
            except Exception as error:
                if not obj.services.unavailable(error):
                    raise
        return stopping["now"]

    service.follow(poll_seconds=poll, should_stop=should_stop, on_applied=count,
                   page_size=page_size, retry=retry)
    progress.finish()
    click.echo(f"stopped; applied {counted(total['applied'], 'event')}")


@click.command("replay")
@click.option("--projection", type=Choice(PROJECTIONS), multiple=True, metavar="NAME",
              help="Accepted for clarity; all projections share one fold, so all are rebuilt "
              f"(NAME: {', '.join(PROJECTIONS)}).")
@click.option("--restart", is_flag=True, help="Discard an unfinished rebuild instead of resuming it.")
@click.option("--workers", type=whole(0), default=None, metavar="N",
              help="Processes that fold customers while this one writes (default: one per CPU, "
              "up to 4, for 50,000 events or more; 0: none).")
@click.option("--quiet", "-q", is_flag=True, help="No progress on standard error.")
@pass_state
def replay(obj: State, projection: tuple[str, ...], restart: bool, workers: int | None,
           quiet: bool) -> None:
    """Rebuild the projections from the start of the log, then swap them in.

    The rebuild writes fresh tables; queries keep answering from the old ones
    until the swap. An interrupted rebuild resumes where it stopped.

    \b
    Examples:
      mot replay                    # after an upgrade that changes a projection
      mot replay --restart          # start an unfinished rebuild over
    """
    progress = Progress("replay", quiet=quiet)
    with _interruptible(obj.services.projections, "mot replay", progress), _worker_errors():
        position = obj.services.projections.replay(_reporter(progress), restart=restart,
                                                   workers=workers)
    progress.finish()
    click.echo(f"rebuilt all projections up to ledger position {position:,}")


# What `mot status --tenant` reports of the whole store, whichever tenant is asked: one
# ledger and one projection position serve every tenant, so its head, lag and a rebuild are
# the store's (the tenant's own moments wait behind every other tenant's).
STORE_WIDE = ("ledger_head", "projection_position", "lag", "lag_seconds",
              "oldest_unprojected_at", "last_progress_at", "rebuild")


@click.command("status")
@format_option("text")
@click.option("--tenant", metavar="TENANT",
              help="Only this tenant's quarantine, alerts and suspect persons; the ledger head, "
              "the projections' position, lag and a rebuild are the store's (one ledger and one "
              "projection position serve every tenant), and are said to be.")
@pass_state
def status(obj: State, fmt: str, tenant: str | None) -> None:
    """Ledger head, the projections' position and lag, the quarantine, the alert outbox and
    suspect persons.

    \b
    Examples:
      mot status
      mot status --format json      # {"ledger_head": ..., "lag": ..., ...}
      mot status --tenant acme      # acme's quarantine, alerts and suspects
    """
    services = obj.services
    by_tenant = services.quarantine.by_tenant() if tenant is not None else {}
    if tenant is not None and not by_tenant.get(tenant):  # a tenant all of whose lines failed
        require_tenant(services, tenant)
    s = services.projections.status()
    alerts = _alert_counts(obj, tenant)
    suspects = [{k: p[k] for k in ("tenant", "customer_id", "ids", "email_links",
                                   "suspect_because")}
                for p in services.persons.suspects(tenant=tenant)]
    record: dict[str, Any] = {
        "ledger_head": s.head, "projection_position": s.position, "lag": s.lag,
        "lag_seconds": round(s.lag_seconds, 3),
        "oldest_unprojected_at": s.oldest_unprojected_at,
        "last_progress_at": s.last_progress_at,
        "quarantined": s.quarantined,
        "rebuild": None if s.rebuild is None else
        {"position": s.rebuild[0], "phase": s.rebuild[1], "target": s.rebuild[2],
         "last_progress_at": s.rebuild_progress_at},
        "alerts": alerts,
        "suspect_persons": suspects}
    no_tenant = 0
    if tenant is not None:
        no_tenant = by_tenant.get(None, 0)
        record = {"tenant": tenant, "store_wide": list(STORE_WIDE), **record,
                  "quarantined": by_tenant.get(tenant, 0),
                  "quarantined_naming_no_tenant": no_tenant}
    if fmt == "json":
        import orjson

        click.echo(orjson.dumps(record).decode())
        return
    if fmt != "text":
        flat = {**record, "rebuild": None if s.rebuild is None else
                f"{s.rebuild[1]} at {s.rebuild[0]}"}
        del flat["alerts"], flat["suspect_persons"]
        flat.pop("store_wide", None)
        flat |= {f"alerts_{k}": v for k, v in alerts.items()}
        flat["suspect_persons"] = len(suspects)
        render([flat] if fmt in ("table", "csv") else [record], fmt)
        return
    behind = f", the oldest waiting {s.lag_seconds:,.1f} s" if s.lag else ""
    if tenant is not None:
        click.echo(f"tenant:       {tenant} (the ledger head, projections and lag are the "
                   "store's, every tenant's)")
    quarantined = (f"{s.quarantined:,}" if tenant is None else
                   f"{record['quarantined']:,} of {tenant}'s, {no_tenant:,} naming no tenant "
                   "(mot quarantine summary)")
    click.echo(f"ledger head:  {s.head:,}\nprojections:  {s.position:,} (lag {s.lag:,}{behind}; "
               f"last progress {s.last_progress_at or 'never'})\n"
               f"quarantined:  {quarantined}\n"
               f"alerts:       {alerts['raised']:,} raised, {alerts['pending']:,} to "
               f"deliver, {alerts['failed']:,} failed (mot alerts list --failed)")
    if s.rebuild is not None:
        click.echo(f"rebuild:      {s.rebuild[1]} at {s.rebuild[0]:,}, last progress "
                   f"{s.rebuild_progress_at} (unfinished: run mot replay)")
    from mot.wording import printable

    for p in suspects:
        click.echo(printable(f"suspect:      {p['tenant']}/{p['customer_id']}: "
                   f"{'; '.join(p['suspect_because'])} (mot identity show --tenant "
                   f"{p['tenant']} {p['customer_id']})"))


def _alert_counts(obj: State, tenant: str | None = None) -> dict[str, int]:
    counts = obj.services.alerts.counts(tenant)
    return {"raised": counts.alerts, "pending": counts.pending, "delivered": counts.delivered,
            "failed": counts.failed}


@click.command("query")
@click.argument("name", type=Choice(QUERIES), metavar="NAME")
@format_option()
@click.option("--tenant", metavar="TENANT", help="Only this tenant's rows.")
@click.option("--customer", metavar="ID",
              help="Only the rows of the person this customer id belongs to, by any of its "
              "ids (relationships, reciprocity, transitions, amplifications, responses, "
              "persons).")
@click.option("--stage", type=Choice(STAGES),
              help="Only customers at this stage (relationships), or transitions into it.")
@click.option("--status", "status_", type=Choice(["ok_to_ask", "give_first", "stop_asking"]),
              help="Only customers with this reciprocity status.")
@click.option("--polarity", type=Choice(["positive", "neutral", "negative"]),
              help="Only amplifications of this polarity.")
@click.option("--function", type=Choice(FUNCTIONS),
              help="Only this team: teams by their function, amplifications by the function "
              "of the moment that triggered them, responses and response-times by the "
              "request's.")
@click.option("--kind", type=Choice(REQUEST_KINDS), help="Only requests of this kind "
              "(responses).")
@click.option("--open", "open_", is_flag=True,
              help="Only requests with no response yet (at --as-of, default now).")
@click.option("--overdue", is_flag=True,
              help="Only open requests waiting longer than their first-response target "
              "(mot.toml [targets.first_response]) at --as-of (default now).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="TOML with the first-response targets for --overdue [default: ./mot.toml "
              "when present].")
@click.option("--since", type=Timestamp(),
              help="Only rows at or after this time: relationships by their last moment, "
              "transitions and amplifications by when they occurred. A date (2026-06-01) "
              "means its first instant, UTC.")
@click.option("--until", type=Timestamp(end_of_day=True),
              help="Only rows at or before this time (the same columns as --since). A date "
              "means its last instant, UTC, so the day is included.")
@click.option("--as-of", type=Timestamp(),
              help="The state as it was then: folds only moments that had occurred by then "
              "(a date: its first instant, UTC).")
@click.option("--sort", metavar="FIELD",
              help="Order by FIELD (numbers largest first); -FIELD / +FIELD to choose.")
@click.option("--limit", type=count(), metavar="N", help="At most N rows.")
@click.option("--min-ids", type=count(), metavar="N",
              help="Only persons with at least N customer ids (persons).")
@click.option("--suspect", is_flag=True,
              help="Only persons that merge protection reports: more than 50 ids, or an "
              "email: id linked to more than 10 (persons).")
@click.option("--columns", metavar="A,B,...", help="Only these fields, in this order.")
@click.option("--expanded", "-x", is_flag=True,
              help="A table's records one field a line, values in full (like psql's \\x).")
@click.option("--no-refresh", is_flag=True,
              help="Do not bring projections up to date first (read-only access).")
@pass_state
def query(obj: State, name: str, fmt: str | None, tenant: str | None, customer: str | None,
          stage: str | None, status_: str | None, polarity: str | None, function: str | None,
          kind: str | None, open_: bool, overdue: bool, config_path: str | None,
          since: datetime | None, until: datetime | None, as_of: datetime | None,
          sort: str | None, limit: int | None, min_ids: int | None, suspect: bool,
          columns: str | None, expanded: bool, no_refresh: bool) -> None:
    """Print a projection: relationships, reciprocity, transitions, amplifications, teams,
    listening, responses (one row per customer request and its first response),
    response-times (per tenant and request function: requests, answered, open, p50, p90), or
    persons (each one's customer ids, SPEC §2 links).

    Timestamps are RFC 3339 in UTC. `lapsed` is computed against --as-of (default now).
    Without --sort, amplifications come by cascade reach, relationships by their last
    moment (latest first), reciprocity by unanswered asks. A table fits the terminal;
    hidden columns are named below it.

    \b
    Examples:
      mot query relationships --columns customer_id,stage,exchanges --limit 10
      mot query reciprocity --tenant acme --status stop_asking --format csv
      mot query transitions --since 2026-06-01 --until 2026-06-30 \\
        --stage detractor
      mot query teams --as-of 2026-03-31
      mot query responses --tenant acme --open --function logistics
      mot query responses --kind complaint --overdue --as-of 2026-04-06T00:00:00Z
      mot query response-times --tenant acme
      mot query persons --tenant acme --min-ids 2
      mot query relationships --customer x:maria   # the person x:maria belongs to
    """
    from mot.service.queries import Query, QueryError

    targets = _targets(config_path) if overdue else None
    services = obj.services
    if not no_refresh:
        services.projections.project()
    try:
        records = services.queries.run(Query(
            name, tenant=tenant, customer=customer, stage=stage, status=status_,
            polarity=polarity, function=function, since=since, until=until, as_of=as_of,
            sort=sort, limit=limit, kind=kind, open=open_, overdue=overdue, targets=targets,
            min_ids=min_ids, suspect=suspect,
        ))
    except QueryError as error:
        raise click.UsageError(str(error)) from error
    if not records:
        require_tenant(services, tenant)
        if customer is not None:
            _say_if_no_such_customer(services, customer, tenant)
    records, chosen = _chosen(records, columns)
    if not records and not chosen and fmt == "csv":  # a header, for the sheet it goes into
        chosen = tuple(services.queries.fields(name))
    render(records, fmt, chosen, expanded=expanded)


def _say_if_no_such_customer(services: Services, customer: str, tenant: str | None) -> None:
    """On stderr, when --customer names no person's id (a misspelt id must not pass for a
    customer with nothing to show); stdout keeps its empty answer for programs."""
    from mot.service.queries import Query

    if services.queries.run(Query("persons", customer=customer, tenant=tenant)):
        return
    if tenant is None:
        click.echo(f"no customer {customer!r} in this store", err=True)
        return
    others = other_tenants_of(services, customer, tenant)
    click.echo(f"no customer {customer!r} in tenant {tenant!r}{elsewhere(others)}", err=True)


def _targets(config_path: str | None) -> Targets:
    """The first-response targets of mot.toml (--config, else ./mot.toml when present)."""
    import os

    from mot.service.config import DEFAULT_PATH, ConfigError
    from mot.service.targets import load_targets

    if config_path is None and os.path.exists(DEFAULT_PATH):
        config_path = DEFAULT_PATH
    try:
        return load_targets(config_path)  # none configured: the query says so (NO_TARGETS)
    except ConfigError as error:
        raise click.ClickException(str(error)) from error


def _chosen(records: list[dict[str, Any]], columns: str | None
            ) -> tuple[list[dict[str, Any]], tuple[str, ...]]:
    """The records with only the fields --columns names, in its order."""
    if columns is None:
        return records, ()
    names = tuple(c.strip() for c in columns.split(",") if c.strip())
    if not names:  # `--columns "$COLS"` with COLS unset gave every field, silently
        raise click.UsageError("--columns names no field: give them separated by commas, such as"
                               " customer_id,stage")
    known = list(records[0]) if records else names
    unknown = [n for n in names if n not in known]
    if unknown:
        from mot.service.config import did_you_mean

        near = "".join(did_you_mean(n, known) for n in unknown[:1])
        raise click.UsageError(f"--columns: no field {', '.join(map(repr, unknown))}{near}; "
                               "fields: " + ", ".join(known))
    return [{n: r[n] for n in names} for r in records], names


def _customer_options(command: Any) -> Any:
    """The customer of log and timeline: --tenant and --customer, as everywhere else."""
    command = click.option("--customer", metavar="ID", help="The customer id (required).")(command)
    return click.option("--tenant", metavar="TENANT",
                        help="The customer's tenant [default: default].")(command)


def _customer_of(command: str, tenant: str | None, customer: str | None,
                 given: tuple[str, ...]) -> tuple[str, str]:
    """(tenant, customer) from the options, or from the arguments: `log CUSTOMER` (with
    --tenant or not), as `mot show` and `identity show` take their id, or the older
    `timeline TENANT CUSTOMER` that scripts may use."""
    if given:
        if len(given) == 1 and customer is None:
            return tenant or "default", given[0]
        if len(given) == 2 and tenant is None and customer is None:
            return given[0], given[1]
        raise click.UsageError(
            f"got {' '.join(map(repr, given))}"
            f"{' beside --customer' if customer is not None else ''}: give the customer once, "
            f"as mot {command} --tenant T --customer C (or mot {command} [--tenant T] C)")
    if customer is None:
        raise click.UsageError(f"missing the customer: mot {command} --tenant T --customer C")
    return tenant or "default", customer


@click.command("log")
@click.argument("given", nargs=-1, metavar="[CUSTOMER]")
@_customer_options
@format_option()
@pass_state
def log(obj: State, given: tuple[str, ...], tenant: str | None, customer: str | None,
        fmt: str | None) -> None:
    """A customer's current moments (after amendments, without retracted ones) in fold
    order: occurred_at, then moment_id.

    \b
    Examples:
      mot log --tenant acme --customer c000145
      mot log --tenant acme c000145 --format jsonl | jq .kind
    """
    tenant, customer = _customer_of("log", tenant, customer, given)
    _show_customer(obj, obj.services.timelines.log, tenant, customer, fmt,
                   ("occurred_at", "direction", "kind", "function", "channel", "actor",
                    "sentiment", "reach", "moment_id"))


@click.command("timeline")
@click.argument("given", nargs=-1, metavar="[CUSTOMER]")
@_customer_options
@format_option()
@pass_state
def timeline(obj: State, given: tuple[str, ...], tenant: str | None, customer: str | None,
             fmt: str | None) -> None:
    """A customer's moments in fold order, with the running stage and reciprocity balance
    after each.

    \b
    Examples:
      mot timeline --tenant acme --customer c000145
      mot timeline --tenant acme --customer c000145 --format csv > c000145.csv

    (`mot timeline [--tenant T] CUSTOMER` too; `mot timeline TENANT CUSTOMER`, the older
    form, still works.)
    """
    tenant, customer = _customer_of("timeline", tenant, customer, given)
    _show_customer(obj, obj.services.timelines.timeline, tenant, customer, fmt,
                   ("occurred_at", "direction", "kind", "function", "stage", "balance",
                    "unanswered_asks", "status", "moment_id"))


def _show_customer(obj: State, read: Callable[[str, str], list[dict[str, Any]]], tenant: str,
                   customer: str, fmt: str | None, table_columns: tuple[str, ...]) -> None:
    """Bring projections up to date, read one customer's records, print them."""
    obj.services.projections.project()
    records = read(tenant, customer)
    if not records:
        # --tenant defaults to "default": say where the id is when another tenant has it.
        others = other_tenants_of(obj.services, customer, tenant)
        raise click.ClickException(f"no current moments for customer {customer!r} of"
                                   f" {tenant!r}{elsewhere(others, ' (', ')')}")
    render(records, fmt, columns=table_columns if (fmt or "table") == "table" else ())


@click.command("story")
@click.option("--tenant", metavar="TENANT", help="Only this tenant.")
@click.option("--top", type=whole(1), default=3, show_default=True, metavar="N",
              help="How many detractors and far-travelled posts to name per tenant.")
@click.option("--format", "fmt", type=Choice(["text", "markdown", "json", "jsonl"]),
              default="text",
              help="text (default), markdown (for a report or a chat), json or jsonl (the "
              "facts per tenant, for programs).")
@pass_state
def story(obj: State, tenant: str | None, top: int, fmt: str) -> None:
    """What the projections say, in plain words: detractors and the teams before them,
    who must stop asking, which posts travelled furthest, who listens.

    \b
    Examples:
      mot story
      mot story --tenant acme --top 5
      mot story --format markdown > story.md
    """
    from mot.service import story as told

    services = obj.services
    services.projections.project()
    lines = told.story(services.queries, tenant=tenant, top=top)
    if lines and fmt in ("json", "jsonl"):
        render(told.summary(services.queries, tenant=tenant, top=top), fmt)
        return
    if lines and fmt == "markdown":
        click.echo(told.markdown(services.queries, tenant=tenant, top=top), nl=False)
        return
    if not lines:
        if tenant is None:
            click.echo("no customers yet: record moments with `mot import FILE`", err=True)
            return
        raise no_such_tenant(services, tenant)
    from mot.cli.output import echo_fitted
    from mot.cli.tables import terminal_width
    from mot.wording import printable

    width = terminal_width()  # a continuation (4 deeper) reads apart from facts (3), names (5)
    for line in lines:
        echo_fitted(printable(line), width)


def known_tenants(services: Services) -> list[str]:
    """The tenants with a current moment, or with a recorded one not projected yet (a
    `--no-refresh` read of those finds nothing, and that is no misspelling)."""
    from mot.service.queries import Query

    projected = {str(r["tenant"]) for r in services.queries.run(Query("listening"))}
    return sorted(projected | set(services.ledger.tenants()))


def other_tenants_of(services: Services, customer: str, tenant: str) -> list[str]:
    """The tenants other than `tenant` where `customer` is a person's id (with a moment)."""
    from mot.service.queries import Query

    return sorted({str(r["tenant"]) for r in services.queries.run(
        Query("persons", customer=customer))} - {tenant})


def elsewhere(others: list[str], before: str = "; ", after: str = "") -> str:
    """'; tenant acme has it: --tenant acme' (nothing when `others` is empty)."""
    if not others:
        return ""
    return (f"{before}tenant {', '.join(others)} {'has' if len(others) == 1 else 'have'} it:"
            f" --tenant {others[0]}{after}")


def require_tenant(services: Services, tenant: str | None) -> None:
    """Fail with `no_such_tenant` when --tenant names a tenant with no current moment: a
    misspelt tenant must not pass for one with nothing to show (called once a command
    found nothing, so that an answer with rows costs no extra query)."""
    if tenant is not None and tenant not in known_tenants(services):
        raise no_such_tenant(services, tenant)


def no_such_tenant(services: Services, tenant: str) -> click.ClickException:
    """The error of a --tenant that has no current moment, naming the tenants that have;
    a tenant with recorded moments that are not projected is told so instead."""
    known = known_tenants(services)
    if tenant in known:
        return click.ClickException(
            f"tenant {tenant!r} has no current moment in the projections (`mot project` brings"
            " in what was recorded since they were last brought up to date)")
    return click.ClickException(
        f"no tenant {tenant!r} in this store (tenants: {', '.join(known) or 'none yet'})")


COMMANDS = [project, replay, status, query, log, timeline, story]
