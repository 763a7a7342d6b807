"""`mot erase` and `mot erasures`: forget a person on request (SPEC §6)."""

from __future__ import annotations

import json

import click

from mot.cli.context import State, pass_state
from mot.cli.output import format_option, render


def _refused(error: Exception) -> click.ClickException:
    return click.ClickException(str(error))


@click.command("erase")
@click.option("--tenant", default="default", show_default=True,
              help="The person's tenant (left out, an id only other tenants hold is refused).")
@click.option("--customer", required=True, help="One of the person's customer ids.")
@click.option("--reason", default=None,
              help="Why (a request number, say): kept in the receipt; no personal data.")
@click.option("--dry-run", is_flag=True, help="Say what would go (counts), change nothing.")
@click.option("--lift", is_flag=True,
              help="End the suppression of the person's ids (later messages go in again).")
@click.option("--new-tenant", is_flag=True,
              help="The tenant has recorded nothing yet: suppress the id before its first "
                   "message (without it, a tenant the store does not know is refused).")
@pass_state
def erase(obj: State, tenant: str, customer: str, reason: str | None, dry_run: bool,
          lift: bool, new_tenant: bool) -> None:
    """Erase the person a customer id belongs to: their personal fields become unreadable
    for good (their keys are destroyed), their rows leave every per-customer projection,
    later messages naming them are suppressed; prints the receipt (JSON).

    The erased moments keep counting in the per-tenant sums (teams, listening), without
    their personal fields.

    \b
    Examples:
      mot erase --tenant acme --customer x:maria --reason "GDPR request 2026-117"
      mot erase --tenant acme --customer x:maria --dry-run
      mot erase --lift --tenant acme --customer x:maria
    """
    from mot.service.erasure import ErasureRefused

    erasures = obj.services.erasures
    try:
        if lift:
            lifted = erasures.lift(tenant, customer)
            click.echo(json.dumps({"tenant": tenant, "lifted_erasures": lifted}))
            if not lifted:  # a typo, or another tenant's person: the suppression goes on
                click.echo(f"mot: warning: tenant {tenant!r} has no erasure of {customer!r}:"
                           " nothing was lifted", err=True)
            return
        if reason is None and not dry_run:
            raise click.UsageError("missing option --reason (kept in the receipt)")
        if dry_run:
            plan = erasures.plan(tenant, customer)
            if plan.holds_nothing:
                _nothing_here(obj, tenant, customer, new_tenant)
            click.echo(json.dumps(plan.as_dict(), indent=2))
            return
        if erasures.holds_nothing(tenant, customer):
            _nothing_here(obj, tenant, customer, new_tenant)
        assert reason is not None
        receipt = erasures.erase(tenant, customer, reason)
    except ErasureRefused as error:
        raise _refused(error) from None
    click.echo(json.dumps(receipt.as_dict(), indent=2))


def _nothing_here(obj: State, tenant: str, customer: str, new_tenant: bool) -> None:
    """`--tenant` defaults to "default": an operator who left it out to erase another tenant's
    customer got a receipt for erasing nothing, and the person stayed. Left out, an id only
    other tenants hold is refused, naming them. A tenant the store does not know (a
    misspelt `--tenant acm`) is refused as `mot query` refuses it: its receipt would say a
    person was erased while hers stayed in acme; `--new-tenant` says it is meant (an id
    suppressed before its tenant's first message: SPEC §6's suppression of later messages).
    Otherwise (a typo of the id, or an id suppressed before its first moment) the erasure
    goes on with a warning."""
    from click.core import ParameterSource

    from mot.cli.projection_commands import (
        elsewhere,
        known_tenants,
        no_such_tenant,
        other_tenants_of,
    )
    from mot.service.erasure import nothing_held

    others = other_tenants_of(obj.services, customer, tenant)
    given = click.get_current_context().get_parameter_source("tenant") is ParameterSource.COMMANDLINE
    if others and not given:
        raise click.ClickException(
            f"tenant {tenant!r} (the default: --tenant was not given) holds nothing of"
            f" {customer!r}{elsewhere(others)}; nothing was erased")
    if not new_tenant and tenant not in known_tenants(obj.services):
        raise click.ClickException(
            f"{no_such_tenant(obj.services, tenant).message}{elsewhere(others)}; nothing was"
            " erased (--new-tenant: suppress the id in a tenant that has recorded nothing yet)")
    click.echo(f"mot: warning: {nothing_held(tenant, customer)}{elsewhere(others)}", err=True)


@click.group("erasures")
def erasures() -> None:
    """The erasures made so far (receipts: counts and a keyed digest, no personal data).

    \b
    Example:
      mot erasures list --tenant acme
    """


@erasures.command("list")
@click.option("--tenant", default=None, help="Only this tenant's.")
@format_option()
@pass_state
def erasures_list(obj: State, tenant: str | None, fmt: str | None) -> None:
    """The receipts of the erasures made, oldest first.

    \b
    Examples:
      mot erasures list
      mot erasures list --tenant acme --format csv > receipts.csv
    """
    receipts = obj.services.erasures.receipts(tenant)
    if not receipts and tenant is not None:
        # A misspelt tenant must not pass for one with no erasures (as `mot query` refuses it).
        from mot.cli.projection_commands import require_tenant

        require_tenant(obj.services, tenant)
    render([r.as_dict() for r in receipts], fmt)


@click.command("upgrade")
@click.option("--encrypt", is_flag=True, required=True,
              help="Seal the personal fields of every event the ledger holds unencrypted.")
@pass_state
def upgrade(obj: State, encrypt: bool) -> None:
    """Upgrade a store made by an older mot: --encrypt seals its ledger's personal fields
    (customer ids, actors, urls, attributes, source ids, links' ids) under per-customer keys,
    so that `mot erase` can forget a person. Resumable: run it again after a stop; progress
    on stderr. New events are sealed once it is done.

    \b
    Examples:
      mot upgrade --encrypt
      mot upgrade --encrypt --store postgresql://mot@db:5432/mot
    """
    sealed = obj.services.erasures.encrypt()
    click.echo(json.dumps({"sealed_events": sealed}))


COMMANDS = [erase, erasures, upgrade]
