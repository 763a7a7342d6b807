"""`mot identity`: say that customer ids are one person, or take it back, and see who is
whom (SPEC §2, "Links").

A link or unlink typed here is the same wire message a file, Kafka or HTTP
carries, recorded through the ledger service; what the wire format refuses is
refused here, naming the field, and nothing is recorded. `show` prints the person
an id belongs to: its ids, each link with its reason, time and origin, and its
moments per id; merge protection says when it looks like a merge of strangers.
"""

from __future__ import annotations

from typing import Any

import click
import orjson

from mot.cli.context import State, creates_store, pass_state
from mot.cli.output import echo_fitted, format_option, render
from mot.wording import printable


@click.group("identity")
def identity() -> None:
    """Persons: which customer ids are one person (links), taking a link back, and who is whom.

    \b
    Examples:
      mot identity link --tenant acme c000218 x:maria --reason "in the ticket"
      mot identity unlink --tenant acme x:ben x:maria --reason "typo"
      mot identity show --tenant acme x:maria    # c000218's person (make demo)
    """


def _pair_command(kind: str, summary: str) -> click.Command:
    @click.argument("first", metavar="CUSTOMER_ID")
    @click.argument("second", metavar="CUSTOMER_ID")
    @click.option("--tenant", default="default", show_default=True,
                  help="The tenant both customer ids belong to.")
    @click.option("--reason", required=True, help="Why (kept with the event, shown in its history).")
    @click.option("--at", "at", metavar="TIME",
                  help="When the evidence was established: RFC 3339 with an offset "
                       "(default: now). The pair's state is that of its latest evidence.")
    @click.option("--new-tenant", is_flag=True,
                  help="The tenant has recorded no moment yet: link its ids before its first "
                       "moment (without it, a tenant the store does not know is refused).")
    @pass_state
    @creates_store
    def command(obj: State, first: str, second: str, tenant: str, reason: str,
                at: str | None, new_tenant: bool) -> None:
        message: dict[str, Any] = {"type": kind, "tenant": tenant,
                                   "customer_ids": [first, second], "reason": reason}
        if at is not None:
            message["occurred_at"] = at
        click.echo(record_pair(obj, message, new_tenant=new_tenant))

    command.__doc__ = summary
    return click.command(kind)(command)


def record_pair(obj: State, message: dict[str, Any], *, new_tenant: bool) -> str:
    """Record one link or unlink through the ledger service; what happened, in words.

    Without `new_tenant`, a tenant the store does not know is refused as `mot erase` refuses
    it: `mot identity link --tenant acm ...` (acme misspelt) linked the ids in a new tenant
    acm, where no moment of theirs will ever be, and said "linked". SPEC §2 allows links
    before a tenant's first moment: `--new-tenant` says it is meant."""
    from mot.domain.ledger import Outcome
    from mot.domain.messages import LinkCustomers, Rejection, parse_message
    from mot.service.ledger import Incoming

    ledger = obj.services.ledger
    raw = orjson.dumps(message)
    checked = parse_message(raw, ledger.clock())
    if isinstance(checked, Rejection):
        raise click.ClickException(f"not recorded: {checked.reason}")
    assert isinstance(checked, LinkCustomers)
    if not new_tenant:
        _require_known_tenant(obj, checked.tenant)
    [verdict] = ledger.record([Incoming(raw, f"cli:identity {message['type']}")]).verdicts
    low, high = checked.customer_ids
    pair = f"{low} and {high} (tenant {checked.tenant}, as of {checked.occurred_at})"
    if verdict.outcome in (Outcome.LINKED, Outcome.UNLINKED):
        return f"{verdict.outcome.value} {pair}"
    if verdict.outcome is Outcome.DUPLICATE:
        return f"duplicate: {pair} was already {checked.type}ed at that time; nothing recorded"
    if verdict.outcome is Outcome.SUPPRESSED:
        raise click.ClickException(
            f"suppressed: {low} or {high} is of an erased person (SPEC §6: messages naming"
            f" them are not recorded); nothing recorded (`mot erasures list --tenant"
            f" {checked.tenant}`; `mot erase --lift` ends it)")
    assert verdict.rejection is not None
    raise click.ClickException(f"rejected: {verdict.rejection.reason}")


def _require_known_tenant(obj: State, tenant: str) -> None:
    from click.core import ParameterSource

    from mot.cli.projection_commands import known_tenants, no_such_tenant

    if tenant in known_tenants(obj.services):
        return
    left_out = (click.get_current_context().get_parameter_source("tenant")
                is not ParameterSource.COMMANDLINE)
    raise click.ClickException(
        f"{no_such_tenant(obj.services, tenant).message}"
        f"{' (the default: --tenant was not given)' if left_out else ''}; nothing recorded"
        " (--new-tenant: link ids of a tenant that has recorded no moment yet)")


link = _pair_command("link", """Say that two customer ids of a tenant are one person.

    \b
    Examples:
      mot identity link --tenant acme c000218 x:maria --reason "in the ticket"
      mot identity link --tenant acme hubspot:501 email:10ef... \\
        --reason "same email" --at 2026-04-02T12:00:00Z
    """)
unlink = _pair_command("unlink", """Say that two customer ids of a tenant are not one person.

    \b
    Examples:
      mot identity unlink --tenant acme x:ben x:maria --reason "typo"
    """)
identity.add_command(link)
identity.add_command(unlink)


@identity.command("show")
@click.argument("customer_id", metavar="CUSTOMER_ID")
@click.option("--tenant", default="default", show_default=True,
              help="The tenant the customer id belongs to.")
@format_option("text")
@click.option("--no-refresh", is_flag=True,
              help="Do not bring projections up to date first (read-only access).")
@pass_state
def show(obj: State, customer_id: str, tenant: str, fmt: str, no_refresh: bool) -> None:
    """The person a customer id belongs to: its ids, each link (reason, time, origin), the
    history of every link and unlink of its ids (those taken back too), and its current
    moments per id.

    \b
    Examples:
      mot identity show --tenant acme x:maria    # after the link above
      mot identity show --tenant acme c000218 --format json
    """
    services = obj.services
    if not no_refresh:
        services.projections.project()
    person = services.persons.show(tenant, customer_id)
    if person is None:
        raise click.ClickException(
            f"no person with a current moment has the id {customer_id!r} in tenant {tenant!r}")
    if fmt == "json":
        click.echo(orjson.dumps(person, option=orjson.OPT_INDENT_2).decode())
        return
    if fmt != "text":
        render(_link_rows(person), fmt)
        return
    from mot.cli.tables import terminal_width

    width = terminal_width()

    def say(line: str) -> None:
        echo_fitted(printable(line), width)

    say(f"person {person['customer_id']} (tenant {tenant}): {len(person['customer_ids'])} ids")
    if person["suspect"]:
        say(f"suspect: {'; '.join(person['suspect_because'])}: check its links and unlink what "
            "is wrong (mot identity unlink)")
    say("ids and their current moments:")
    for i in person["customer_ids"]:
        say(f"  {i}  {person['moments'][i]}")
    if person["links"]:
        say("links:")
    for row in _link_rows(person):
        say(f"  {row['customer_ids']}  {row['occurred_at']}  {row['reason']!r}"
            f"  from {row['origin']}")
    if person["history"]:
        say("history (every link and unlink of its ids, by the time of the evidence; * decides "
            "the pair now):")
    for e in person["history"]:
        say(f"  {e['occurred_at']}  {e['event']:<8}  {' - '.join(e['customer_ids'])}"
            f"  {e['reason']!r}  from {e['origin']}, recorded {e['recorded_at']}"
            f"{'  *' if e['decides'] else ''}")


def _link_rows(person: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"customer_ids": " - ".join(link["customer_ids"]),
             "occurred_at": link["occurred_at"], "reason": link["reason"],
             "origin": link["origin"], "recorded_at": link["recorded_at"]}
            for link in person["links"]]


COMMANDS = [identity]
