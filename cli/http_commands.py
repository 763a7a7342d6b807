"""Commands of the HTTP API: `mot token create|list|revoke` and `mot serve`."""

from __future__ import annotations

import re
from typing import Any

import click

from mot.adapters.http.tenancy import (
    DEFAULT_REPORT_RATE,
    DEFAULT_TENANT_BURST,
    DEFAULT_TENANT_RATE,
    LEAST_REPORT_RATE,
    LEAST_TENANT_RATE,
)
from mot.cli.context import State, creates_store, pass_state
from mot.cli.output import FORMATS, render
from mot.cli.params import ROW_ID, SECONDS, Choice, rate, seconds, whole

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "ki": 1024, "m": 1000**2, "mb": 1000**2,
          "mib": 1024**2, "mi": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3, "gi": 1024**3}


class ByteSize(click.ParamType):  # type: ignore[type-arg]
    """A size: `8MiB`, `500kB`, `1048576`."""

    name = "SIZE"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int):
            return value
        match = _SIZE.match(str(value))
        if match is None:
            self.fail(f"{value!r} is not a size such as 8MiB, 500kB or 1048576", param, ctx)
        size = int(float(match.group(1)) * _UNITS[(match.group(2) or "").lower()])
        if size < 1024:
            self.fail(f"{value!r}: the limit must be at least 1 KiB", param, ctx)
        return size


@click.group("token")
def token() -> None:
    """Create, list and revoke API tokens (one tenant each; scopes read and/or write).

    \b
    Examples:
      mot token create --tenant acme --scope read,write --label crm-sync
      mot token list
      mot token revoke 3
    """


@token.command("create")
@click.option("--tenant", required=True, help="The only tenant the token reads and writes.")
@click.option("--scope", "scopes", default="read", show_default=True, metavar="SCOPES",
              help="read, write, admin (erasure of a person, SPEC §6), or several: write,read.")
@click.option("--label", default="", help="A note to tell tokens apart in `mot token list`.")
@pass_state
@creates_store
def token_create(obj: State, tenant: str, scopes: str, label: str) -> None:
    """Create a token and print it once: only its hash is stored, it cannot be shown again.

    \b
    Example:
      mot token create --tenant acme --scope read,write --label crm-sync
    """
    from mot.service.access import AccessError, check_token_request

    try:
        # Before the store opens: a refused request on a new path left a store and its
        # .lock file behind.
        check_token_request(tenant, scopes, label)
        stored, secret = obj.services.access.create(tenant, scopes, label)
    except AccessError as error:
        raise click.UsageError(str(error)) from error
    click.echo(secret)
    click.echo(f"token {stored.id} for tenant {stored.tenant!r}, scopes "
               f"{','.join(sorted(stored.scopes))}: keep it now, it is not shown again", err=True)
    _warn_of_a_new_tenant(obj, stored.tenant, stored.id)


def _warn_of_a_new_tenant(obj: State, tenant: str, token_id: int) -> None:
    """A token for a tenant that has recorded nothing, in a store that knows others: a
    misspelt `--tenant acm` gave a token whose writes all went to a new tenant acm and whose
    reads found nothing, without a word. A token is how a new tenant starts sending (its
    first moments come through it), so this is said, not refused."""
    from mot.cli.projection_commands import known_tenants

    known = known_tenants(obj.services)
    if known and tenant not in known:
        click.echo(f"mot: warning: tenant {tenant!r} has recorded nothing in this store"
                   f" (tenants: {', '.join(known)}): the token reads and writes {tenant!r}"
                   f" alone; if the name is a typo, `mot token revoke {token_id}`", err=True)


@token.command("list")
@click.option("--format", "fmt", type=Choice(FORMATS), default=None)
@pass_state
def token_list(obj: State, fmt: str | None) -> None:
    """Every token: id, tenant, scopes, label, when created and revoked (never the token).

    \b
    Example:
      mot token list --format csv
    """
    render([t.as_record() for t in obj.services.access.list()], fmt)


@token.command("revoke")
@click.argument("token_ids", nargs=-1, type=ROW_ID, required=True, metavar="ID...")
@pass_state
def token_revoke(obj: State, token_ids: tuple[int, ...]) -> None:
    """Revoke tokens by id: their next request is refused (401).

    \b
    Example:
      mot token revoke 3 4
    """
    from mot.service.access import AccessError

    access = obj.services.access
    for token_id in token_ids:
        try:
            revoked = access.revoke(token_id)
        except AccessError as error:
            raise click.ClickException(str(error)) from error
        click.echo(f"revoked token {revoked.id} ({revoked.tenant}) at {revoked.revoked_at}")


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=whole(0, 65535), default=8080, show_default=True)
@click.option("--max-body", type=ByteSize(), default="8MiB", show_default=True,
              help="Largest request body accepted; larger ones get 413.")
@click.option("--max-items", type=whole(1), default=100_000, show_default=True,
              help="Most messages one request may carry; a batch of more gets 413 and nothing "
                   "of it is recorded.")
@click.option("--memory-budget", type=ByteSize(), default="64MiB", show_default=True,
              help="Request bodies held at once, all requests together (at least --max-body); "
                   "a request waits for room, or gets 503 with Retry-After.")
@click.option("--budget-wait", type=seconds(0), default=10.0, show_default=True,
              help="Seconds a request waits for room in the memory budget before its 503 (429 "
                   "when its tenant's share was full).")
@click.option("--tenant-memory", type=ByteSize(), default=None, envvar="MOT_TENANT_MEMORY",
              show_envvar=True, help="Request bodies one tenant holds at once (from --max-body "
              "to --memory-budget; default half of --memory-budget): a tenant that floods "
              "waits for its own requests, then gets 429 tenant_memory, and leaves the rest "
              "to the others.")
@click.option("--tenant-rate", type=rate("requests a second", LEAST_TENANT_RATE),
              default=DEFAULT_TENANT_RATE,
              show_default=True, envvar="MOT_TENANT_RATE", show_envvar=True, metavar="PER_S",
              help="Requests a second one tenant's tokens may send (a token bucket per tenant); "
                   "more get 429 rate_limited with Retry-After. 0: no limit, else at least 0.001.")
@click.option("--tenant-burst", type=whole(1), default=DEFAULT_TENANT_BURST, show_default=True,
              envvar="MOT_TENANT_BURST", show_envvar=True,
              help="Requests one tenant may send at once above --tenant-rate (the bucket's size).")
@click.option("--report-rate", type=rate("reports a minute", LEAST_REPORT_RATE),
              default=DEFAULT_REPORT_RATE,
              show_default=True, envvar="MOT_REPORT_RATE", show_envvar=True, metavar="PER_MIN",
              help="GET /v1/report pages a minute per tenant, one at a time (each computes a "
                   "whole report); more get 429 report_rate or report_busy. 0: no rate limit, "
                   "else at least 0.1.")
@click.option("--metrics-token", envvar="MOT_METRICS_TOKEN", show_envvar=True, default=None,
              metavar="SECRET", help="Make /metrics answer only `Authorization: Bearer SECRET` "
              "(the operator's scraper): its totals tell a tenant how much the others send. "
              "Default: /metrics is open, as /healthz.")
@click.option("--read-timeout", type=seconds(0.1), default=30.0, show_default=True,
              help="Seconds a client has to send its request headers, and then its body; a "
                   "slower one is disconnected (headers) or answered 408 (body).")
@click.option("--project/--no-project", default=True, show_default=True,
              help="Keep the projections up to date in the background (turn off when a "
                   "`mot project --follow` runs elsewhere).")
@click.option("--poll", type=SECONDS, default=0.5, show_default=True,
              help="Seconds between looks at the ledger for the background projector.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="TOML: the vendor mappings, [webhooks.hubspot|zendesk] secrets and "
                   "[targets.first_response] (default ./mot.toml when it exists).")
@click.option("--ingest-threads", type=whole(1, 64), default=4, show_default=True,
              help="Batches validated and recorded at once (more only contend for the GIL and "
                   "the writer lock).")
@click.option("--stall-after", type=seconds(0), default=300.0, show_default=True,
              metavar="SECONDS", help="/healthz answers 503 when events wait and the projections "
              "(this server's projector or a `mot project --follow`) have made no progress for "
              "this long; 0: never.")
@click.option("--access-log/--no-access-log", default=True, show_default=True)
@click.option("--log-level", type=Choice(["critical", "error", "warning", "info", "debug"]),
              default="info", show_default=True)
@pass_state
@creates_store
def serve(obj: State, host: str, port: int, max_body: int, max_items: int, memory_budget: int,
          budget_wait: float, tenant_memory: int | None, tenant_rate: float, tenant_burst: int,
          report_rate: float, metrics_token: str | None, read_timeout: float, project: bool, poll: float,
          config_path: str | None, ingest_threads: int, stall_after: float, access_log: bool,
          log_level: str) -> None:
    """Serve the HTTP API (OpenAPI at /docs) until SIGINT or SIGTERM.

    One process, its requests on a thread pool; a batch is answered after its commit.

    \b
    Examples:
      mot serve --port 8080
      mot --store postgresql://mot@db/mot serve --host 0.0.0.0 --no-project
    """
    import os

    from mot.service.workers import few_arenas

    few_arenas()  # before the server's threads first allocate

    import uvicorn

    from mot.adapters.http.app import create_app
    from mot.adapters.http.ingest import Limits
    from mot.adapters.http.server import BindError, bind, header_deadline
    from mot.adapters.http.tenancy import Quotas
    from mot.adapters.http.webhooks import WebhookSettings
    from mot.adapters.vendors import ConfigError
    from mot.service.alert_config import load_alert_config
    from mot.service.targets import load_targets

    try:
        sock = bind(host, port)  # before anything is printed or opened
    except BindError as error:
        raise click.ClickException(str(error)) from None
    port = sock.getsockname()[1]
    if config_path is None and os.path.exists("mot.toml"):
        config_path = "mot.toml"
    try:
        webhooks = WebhookSettings.load(config_path)
        targets = load_targets(config_path)
        load_alert_config(config_path)  # [alerts]: a bad key stops here, not in the background
    except ConfigError as error:
        raise click.ClickException(str(error)) from error
    try:
        limits = Limits(max_body=max_body, max_items=max_items, memory_budget=memory_budget,
                        budget_wait=budget_wait, read_timeout=read_timeout,
                        tenant_memory=tenant_memory)
        quotas = Quotas(rate=tenant_rate, burst=tenant_burst, report_rate=report_rate)
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    app = create_app(obj.services, limits=limits, project_every=poll if project else None,
                     webhooks=webhooks, ingest_threads=ingest_threads,
                     stall_after_s=stall_after or None, targets=targets, config_path=config_path,
                     quotas=quotas, metrics_token=metrics_token)
    click.echo(f"mot API on http://{host}:{port} (OpenAPI at /docs); store {obj.store_shown}",
               err=True)
    config = uvicorn.Config(app, host=host, port=port, access_log=access_log, log_level=log_level,
                            timeout_graceful_shutdown=10, http=header_deadline(read_timeout))
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    if not server.started:  # the app's start-up failed; uvicorn said why (as uvicorn.run)
        raise SystemExit(3)


COMMANDS = [token, serve]
