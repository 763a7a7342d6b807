"""`mot alerts`: list, deliver and acknowledge the alerts the projections raised (SPEC §3.6)."""

from __future__ import annotations

from datetime import datetime

import click

from mot.cli.context import State, creates_store, pass_state
from mot.cli.output import default_format, format_option, render
from mot.cli.params import Choice, Timestamp, count, seconds, whole
from mot.wording import counted

RULES = ("detractor", "stop_asking", "negative_amplification", "overdue")
LIST_COLUMNS = ("raised_at", "rule", "tenant", "customer_id", "function", "actor", "channel",
                "moment_id", "alert_id", "acked_at")
CONFIG_HELP = ("TOML with the [alerts] section (default: MOT_CONFIG, else ./mot.toml when it "
               "exists).")


@click.group("alerts")
def alerts() -> None:
    """Alerts: changes someone should act on now, and their delivery.

    \b
    Examples:
      mot alerts list --rule detractor --since 2026-04-01T00:00:00Z
      mot alerts deliver --follow
      mot alerts ack 5b1c...
    """


@alerts.command("list")
@format_option()
@click.option("--rule", type=Choice(RULES), help="Only alerts of this rule.")
@click.option("--since", type=Timestamp(), help="Only alerts raised at or after this time.")
@click.option("--tenant", metavar="TENANT", help="Only this tenant's alerts.")
@click.option("--failed", is_flag=True,
              help="Only alerts whose delivery to some destination failed for good "
                   "(`mot alerts deliver --retry-failed` sends them again).")
@click.option("--limit", type=count(), help="At most this many alerts.")
@pass_state
def list_alerts(obj: State, fmt: str | None, rule: str | None, since: datetime | None,
                tenant: str | None, failed: bool, limit: int | None) -> None:
    """The alerts raised, oldest first, with each destination's delivery state.

    \b
    Examples:
      mot alerts list --rule detractor --since 2026-04-01T00:00:00Z
      mot alerts list --failed --format json
    """
    from mot.domain.timefmt import to_micros
    from mot.service.alerting import AlertQuery, stored_record

    found = obj.services.alerts.find(AlertQuery(
        tenant, rule, None if since is None else to_micros(since), failed, limit=limit))
    if not found and tenant is not None:
        # A misspelt tenant must not pass for one with no alerts (as `mot query` refuses it).
        from mot.cli.projection_commands import require_tenant

        require_tenant(obj.services, tenant)
    records = [stored_record(s) for s in found]
    fmt = fmt or default_format()
    if fmt in ("table", "csv"):
        for r in records:
            r["deliveries"] = ", ".join(f"{d['destination']}: {d['state']}" for d in r["deliveries"])
        render(records, fmt, (*LIST_COLUMNS, "deliveries"))
    else:
        render(records, fmt)


@alerts.command("ack")
@click.argument("alert_id")
@pass_state
def ack(obj: State, alert_id: str) -> None:
    """Acknowledge an alert: someone acts on it; what is not delivered yet is not sent.

    \b
    Example:
      mot alerts ack 5b1c3f0e-...
    """
    stored = obj.services.alerts.ack(alert_id)
    if stored is None:
        raise click.ClickException(f"no alert {alert_id!r} (see `mot alerts list`)")
    click.echo(f"acknowledged {alert_id} ({stored.alert.rule}, {stored.alert.tenant} · "
               f"{stored.alert.customer_id})", err=True)


@alerts.command("deliver")
@click.option("--follow", is_flag=True, help="Keep delivering as alerts are raised (and run "
              "the overdue check) until interrupted.")
@click.option("--retry-failed", is_flag=True,
              help="Send the failed deliveries again first (their attempts start anew).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help=CONFIG_HELP)
@click.option("--poll", type=seconds(0.05), default=1.0, show_default=True,
              help="Seconds between looks at the outbox with --follow.")
@click.option("--timeout", type=seconds(0.1), default=10.0, show_default=True,
              help="Seconds a webhook has to answer before the attempt counts as failed.")
@click.option("--backoff", type=seconds(0.01), default=2.0, show_default=True,
              help="Seconds before the first retry; each next one waits twice as long "
                   "(with jitter, at most 10 min).")
@click.option("--max-attempts", type=whole(1), default=12, show_default=True,
              help="Failed attempts after which a delivery goes to the failed list.")
@click.option("--lease", type=seconds(1), default=60.0, show_default=True,
              help="Seconds a batch stays claimed by this deliverer; a deliverer that dies "
                   "leaves its batch to others after this long.")
@click.option("--batch", type=whole(1), default=200, show_default=True,
              help="Deliveries claimed at a time.")
@pass_state
@creates_store
def deliver(obj: State, follow: bool, retry_failed: bool, config_path: str | None, poll: float,
            timeout: float, backoff: float, max_attempts: int, lease: float, batch: int) -> None:
    """Send the outbox's alerts to every configured destination, at least once.

    Webhooks get a signed JSON POST (or Slack's shape); a Kafka topic gets each alert
    keyed by its id. Several deliverers may run at once: a delivery is claimed by one.

    \b
    Examples:
      mot alerts deliver
      mot alerts deliver --follow --config /etc/mot/mot.toml
      mot alerts deliver --retry-failed
    """
    from mot.service.alert_config import load_alert_config
    from mot.service.alerting import Backoff
    from mot.service.config import ConfigError

    try:
        config = load_alert_config(config_path)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    if not config.destinations and config.path is None:
        raise click.ClickException(
            "no ./mot.toml here and no --config FILE (or MOT_CONFIG): nothing says where alerts "
            "go; write [[alerts.webhooks]] or [alerts.kafka] in a mot.toml (docs/alerts.md)")
    if not config.destinations:
        raise click.ClickException(
            f"no destination configured in {config.path}: add [[alerts.webhooks]] "
            "or [alerts.kafka]")
    overdue = obj.services.overdue_check(config_path,
                                         warn=lambda line: click.echo(line, err=True))
    deliverer = obj.services.deliverer(
        config, backoff=Backoff(backoff, max(600.0, backoff), max_attempts), lease_s=lease,
        batch=batch, timeout_s=timeout)
    from mot.service.alerting import Round
    from mot.service.resilience import RETRIED, Retry, run_round

    # --follow outlives the store (a PostgreSQL restart): one line, then retries with backoff.
    retry = Retry("mot alerts deliver --follow", obj.services.unavailable,
                  lambda line: click.echo(line, err=True)) if follow else None
    try:
        if retry_failed:
            click.echo(f"{counted(deliverer.retry_failed(), 'failed delivery', 'failed deliveries')}"
                       " to send again", err=True)
        def one_round() -> Round:
            if overdue.due():
                overdue.run()
            return deliverer.deliver_once(wait=not follow)

        while True:
            done = run_round(retry, one_round)
            if done is RETRIED:
                continue
            if done.delivered or done.failed or done.retrying or not follow:
                click.echo(f"delivered {done.delivered:,}, retrying {done.retrying:,}, "
                           f"failed {done.failed:,} (queued {done.queued:,})", err=True)
            if not follow:
                break
            deliverer.pause(poll)
    finally:
        deliverer.close()


COMMANDS = [alerts]
