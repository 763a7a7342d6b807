"""`mot kafka ...`: moments in from topics, projection changelogs and the ledger out.

Thin commands: they wire the kafka-python adapters to the use cases of
`mot.service.streaming` and report; the loops and the guarantees are there.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import click
import orjson

from mot.cli.context import State, creates_store, pass_state
from mot.cli.params import Choice, count, seconds, whole
from mot.cli.progress import Progress
from mot.wording import counted

BOOTSTRAP_ENV = "MOT_KAFKA_BOOTSTRAP"


def _bootstrap(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--bootstrap-servers", "bootstrap", envvar=BOOTSTRAP_ENV, default="localhost:9092",
        show_default=True, metavar="HOST:PORT[,...]",
        help=f"Kafka brokers to start from. Also read from {BOOTSTRAP_ENV}.",
    )(command)


class _Stop:
    """SIGINT/SIGTERM ask the loop to stop after the batch it is on."""

    def __init__(self) -> None:
        self.requested = False
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True

    def __call__(self) -> bool:
        return self.requested


def _fail(error: Exception) -> click.ClickException:
    return click.ClickException(str(error))


@click.group("kafka")
def kafka() -> None:
    """Ingest moments from Kafka topics; publish projection changelogs; export the ledger.

    \b
    Examples:
      mot kafka ingest --topic moments --group mot
      mot kafka publish --bootstrap-servers kafka:9092
      mot kafka export --topic ledger.backup
    """


@kafka.command("ingest")
@_bootstrap
@click.option("--topic", "topics", multiple=True, required=True,
              help="Topic to read wire-format v1 messages from (repeat for several).")
@click.option("--group", required=True, help="Consumer group: processes in one group share the partitions.")
@click.option("--dlq-topic", help="Also send rejected messages here (original bytes; reason, field "
              "and origin in the headers). They always go to the quarantine.")
@click.option("--batch-size", type=whole(1, 100_000), default=1000, show_default=True,
              help="Messages polled at a time.")
@click.option("--commit-every", type=whole(1), default=50_000, show_default=True,
              metavar="N", help="Messages recorded in one transaction while behind, after which "
              "their offsets are committed (at once when caught up or the topic goes quiet).")
@click.option("--commit-interval", type=seconds(0.01), default=1.0, show_default=True,
              metavar="SECONDS", help="Commit at least this often when the broker does not say "
              "how far behind the group is.")
@click.option("--workers", type=whole(0), default=None, metavar="N",
              help="Processes that validate the next batches while this one records "
              "(default: one per spare CPU, up to 2; 0: none).")
@click.option("--auto-offset-reset", type=Choice(["earliest", "latest"]), default="earliest",
              show_default=True, help="Where a group without committed offsets starts.")
@click.option("--max-poll-interval-ms", type=whole(1000), default=300_000, show_default=True)
@click.option("--session-timeout-ms", type=whole(1000), default=45_000, show_default=True)
@click.option("--heartbeat-interval-ms", type=whole(100), default=3_000, show_default=True)
@click.option("--wait-for-broker", type=seconds(0), default=300.0, show_default=True,
              metavar="SECONDS", help="Keep trying to reach the broker this long at start, "
              "then fail (each attempt at least half a second).")
@click.option("--exit-when-idle", type=seconds(0), default=None, metavar="SECONDS",
              help="Stop after this long without a message, counted while this member is in "
                   "the group with its partitions settled (none included), never while it "
                   "joins or the group rebalances (default: run until SIGINT/SIGTERM).")
@click.option("--summary-json", is_flag=True, help="Print the final summary as one JSON object.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on standard error.")
@pass_state
@creates_store
def ingest(obj: State, bootstrap: str, topics: tuple[str, ...], group: str, dlq_topic: str | None,
           batch_size: int, commit_every: int, commit_interval: float, workers: int | None,
           auto_offset_reset: str,
           max_poll_interval_ms: int, session_timeout_ms: int, heartbeat_interval_ms: int,
           wait_for_broker: float, exit_when_idle: float | None, summary_json: bool, quiet: bool) -> None:
    """Record moments from Kafka topics as a consumer-group member, until SIGINT/SIGTERM.

    Polled batches are validated ahead (in --workers processes) and recorded
    --commit-every messages to a transaction; their offsets are committed only
    after that (and after their rejects reached --dlq-topic), so a crash or a
    rebalance redelivers at most one transaction's messages, which the ledger
    records as duplicates. Run several in one group against one PostgreSQL
    store to share the partitions.

    Example: mot kafka ingest --topic moments --group mot --dlq-topic moments.dlq
    """
    from mot.adapters.kafka.client import ConsumerSettings, group_member, producer
    from mot.service.parsing import default_workers
    from mot.service.resilience import Retry
    from mot.service.streaming import IngestStats, StreamError
    from mot.service.streaming import ingest as run_ingest

    stop = _Stop()
    progress = Progress("kafka ingest", quiet=quiet)
    services = obj.services  # open the store before joining the group
    # A consumer runs for as long as it is up, maybe beside other members writing to the same
    # store: its caches stay bounded whatever the ledger and the customers grow to.
    services.ingesting()

    def note(text: str) -> None:
        if not quiet:
            progress.update(text, force=True)

    # Joining a group takes seconds (25 s on Tansu): it said "partitions revoked: none" and then
    # "0 read, 0 recorded, ... lag 0 · 0/s" every 5 s, which read as a stuck command.
    joining = f"joining the group {group} (waiting for its partitions)"
    assigned = [False]

    def rebalanced(what: str, partitions: list[tuple[str, int]]) -> None:
        assigned[0] = what == "assigned"
        if partitions or assigned[0]:
            note(f"partitions {what}: " + (", ".join(f"{t}/{p}" for t, p in partitions) or "none"))
        else:
            note(joining)

    def report(stats: IngestStats) -> None:
        if stats.read == 0 and not assigned[0]:
            progress.update(joining)
        else:
            progress.update(stats.progress_line(), count=stats.read)

    settings = ConsumerSettings(bootstrap, topics, group, auto_offset_reset=auto_offset_reset,
                                max_poll_interval_ms=max_poll_interval_ms,
                                session_timeout_ms=session_timeout_ms,
                                heartbeat_interval_ms=heartbeat_interval_ms)
    waiting: dict[str, Any] = {"wait_s": wait_for_broker, "should_stop": stop,
                               "on_retry": lambda e: note(f"waiting for the broker: {e}")}
    try:
        stats = run_ingest(
            services.ledger, lambda: group_member(settings, on_rebalance=rebalanced, **waiting),
            connect_dlq=(lambda: producer(bootstrap, **waiting)) if dlq_topic else None,
            dlq_topic=dlq_topic, offsets=services.offsets(group), batch_size=batch_size,
            commit_every=commit_every, commit_interval_s=commit_interval,
            workers=default_workers() if workers is None else workers,
            should_stop=stop, progress=report, exit_when_idle_s=exit_when_idle,
            retry=Retry("mot kafka ingest", services.unavailable,
                        lambda line: click.echo(line, err=True)))
    except StreamError as error:
        raise _fail(error) from error
    if stats is None:
        click.echo("stopped before the broker could be reached; nothing read", err=True)
        return
    progress.finish()
    click.echo(orjson.dumps({**stats.as_dict(), **_cpu_seconds()}).decode() if summary_json
               else stats.summary_line())


def _cpu_seconds() -> dict[str, float]:
    """The CPU this process and its parse workers (reaped when the ingest ended) used, start-up
    included: which of the two bounds the rate (bench/kafka_bench.py reads them)."""
    import resource

    own, workers = (resource.getrusage(resource.RUSAGE_SELF),
                    resource.getrusage(resource.RUSAGE_CHILDREN))
    return {"cpu_seconds": round(own.ru_utime + own.ru_stime, 3),
            "workers_cpu_seconds": round(workers.ru_utime + workers.ru_stime, 3)}


@kafka.command("publish")
@_bootstrap
@click.option("--topic-prefix", default="mot.", show_default=True,
              help="Topics are PREFIX + relationships, reciprocity, amplifications.")
@click.option("--name", default="default", show_default=True,
              help="The publisher whose position the store keeps (one process per name).")
@click.option("--follow", "-f", is_flag=True, help="Keep publishing as the projections change.")
@click.option("--poll", type=seconds(0.01), default=1.0, show_default=True,
              help="Seconds between rounds when following.")
@click.option("--refresh/--no-refresh", default=True, show_default=True,
              help="Bring the projections up to date before each round (off when a separate "
                   "`mot project --follow` runs).")
@click.option("--create-topics/--no-create-topics", default=True, show_default=True,
              help="Create missing topics, compacted (cleanup.policy=compact).")
@click.option("--partitions", type=whole(1), default=1, show_default=True,
              help="Partitions of topics this command creates.")
@click.option("--replication-factor", type=whole(1), default=1, show_default=True)
@click.option("--reset", is_flag=True,
              help="Forget the saved position and publish every row again (after `mot replay`).")
@click.option("--page-size", type=whole(1, 100_000), default=5000, show_default=True)
@click.option("--summary-json", is_flag=True, help="Print the final summary as one JSON object.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on standard error.")
@pass_state
def publish(obj: State, bootstrap: str, topic_prefix: str, name: str, follow: bool, poll: float,
            refresh: bool, create_topics: bool, partitions: int, replication_factor: int,
            reset: bool, page_size: int, summary_json: bool, quiet: bool) -> None:
    """Publish every change of relationship, reciprocity and amplification rows.

    One message per change, keyed by the row's id (`tenant/customer_id`, or the
    amplification id), its value the row with its version; a deleted row (a
    retracted amplification) is a tombstone. The position is kept in the store,
    saved after each page is written: a restart continues without a gap, and a
    page repeated after a crash carries the same versions.

    \b
    Examples:
      mot kafka publish
      mot kafka publish --topic-prefix crm. --no-refresh
    """
    from mot.adapters.kafka.client import COMPACTED, KafkaSink, ensure_topics
    from mot.service.streaming import Publisher, PublishStats, StreamError

    services = obj.services
    changelog = services.changelog
    if reset:
        changelog.reset(name)
    progress = Progress("kafka publish", quiet=quiet)
    try:
        sink = KafkaSink(bootstrap)
    except StreamError as error:
        raise _fail(error) from error
    publisher = Publisher(changelog, sink, prefix=topic_prefix, name=name, page_size=page_size)

    def report(stats: PublishStats) -> None:
        parts = ", ".join(f"{p} {n:,}" for p, n in stats.by_projection.items())
        progress.update(f"{counted(stats.messages, 'message')} ({parts}), "
                        f"{counted(stats.tombstones, 'tombstone')}",
                        count=stats.messages)

    def refresh_projections() -> None:
        if refresh:
            services.projections.project()

    try:
        if create_topics:
            ensure_topics(bootstrap, publisher.topics(), partitions=partitions,
                          replication_factor=replication_factor, configs=COMPACTED)
        if follow:
            from mot.service.resilience import Retry

            stop = _Stop()
            stats = publisher.follow(
                retry=Retry("mot kafka publish --follow", services.unavailable,
                            lambda line: click.echo(line, err=True)),
                poll_seconds=poll, should_stop=stop, before_round=refresh_projections,
                progress=report,
                on_error=lambda e: progress.update(f"broker error, retrying: {e}", force=True))
        else:
            refresh_projections()
            stats = publisher.publish(progress=report)
    except StreamError as error:
        raise _fail(error) from error
    finally:
        sink.close()
    progress.finish()
    if summary_json:
        click.echo(orjson.dumps(stats.as_dict()).decode())
    else:
        click.echo(f"published {counted(stats.messages, 'change')} "
                   f"({counted(stats.tombstones, 'tombstone')}) up to "
                   f"ledger position {stats.position:,} ({stats.seconds:.1f} s)")


@kafka.command("export")
@_bootstrap
@click.option("--topic", required=True, help="Topic to write the ledger to.")
@click.option("--tenant", help="Only this tenant's moments, amendments and retractions.")
@click.option("--after", type=count(0), default=0, show_default=True, metavar="POSITION",
              help="Start after this ledger position (a previous export's final position).")
@click.option("--create-topic/--no-create-topic", default=True, show_default=True,
              help="Create the topic when it does not exist.")
@click.option("--partitions", type=whole(1), default=1, show_default=True,
              help="Partitions of a topic this command creates (1 keeps the whole ledger's order; "
                   "with more, each moment's events stay in order).")
@click.option("--replication-factor", type=whole(1), default=1, show_default=True)
@click.option("--summary-json", is_flag=True, help="Print the final summary as one JSON object.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on standard error.")
@pass_state
def export(obj: State, bootstrap: str, topic: str, tenant: str | None, after: int, create_topic: bool,
           partitions: int, replication_factor: int, summary_json: bool, quiet: bool) -> None:
    """Write the ledger to a topic in notification order, as wire-format messages keyed by moment id.

    Moments as recorded, then their amendments ({"type": "amend", ...}) and
    retractions ({"type": "retract", ...}) where they happened; ingesting the
    topic into an empty store gives the same projections.

    \b
    Examples:
      mot kafka export --topic ledger.backup
      mot kafka export --topic acme.ledger --tenant acme
    """
    from mot.adapters.kafka.client import KafkaSink, ensure_topics
    from mot.service.streaming import ExportStats, StreamError
    from mot.service.streaming import export as run_export

    services = obj.services
    progress = Progress("kafka export", quiet=quiet)

    def report(stats: ExportStats, head: int) -> None:
        progress.update(f"{stats.position:,}/{head:,}, {stats.sent:,} sent",
                        done=stats.position / head if head else None, count=stats.read)

    try:
        if create_topic:
            ensure_topics(bootstrap, [topic], partitions=partitions,
                          replication_factor=replication_factor)
        sink = KafkaSink(bootstrap)
        try:
            stats = run_export(services.notification_log, sink, topic, tenant=tenant, after=after,
                               progress=report)
        finally:
            sink.close()
    except StreamError as error:
        raise _fail(error) from error
    progress.finish()
    if summary_json:
        click.echo(orjson.dumps(stats.as_dict()).decode())
    else:
        click.echo(f"exported {stats.sent:,} of {counted(stats.read, 'event')} to {topic}; "
                   f"continue later with --after {stats.position}")


COMMANDS = [kafka]
