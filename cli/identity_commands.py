"""`mot identity`: say that customer ids are one person, or take it back (SPEC §2, "Links").

A link or unlink typed here is the same wire message a file, Kafka or HTTP
carries, recorded through the ledger service; what the wire format refuses is
refused here, naming the field, and nothing is recorded.
"""

from __future__ import annotations

from typing import Any

import click
import orjson

from mot.cli.context import State, creates_store, pass_state


@click.group("identity")
def identity() -> None:
    """Persons: which customer ids are one person (links), and taking a link back.

    \b
    Examples:
      mot identity link --tenant acme zendesk:m1 x:maria --reason "handle in the ticket"
      mot identity unlink --tenant acme x:ben x:maria --reason "typo"
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
    @pass_state
    @creates_store
    def command(obj: State, first: str, second: str, tenant: str, reason: str,
                at: str | None) -> None:
        message: dict[str, Any] = {"type": kind, "tenant": tenant,
                                   "customer_ids": [first, second], "reason": reason}
        if at is not None:
            message["occurred_at"] = at
        click.echo(record_pair(obj, message))

    command.__doc__ = summary
    return click.command(kind)(command)


def record_pair(obj: State, message: dict[str, Any]) -> str:
    """Record one link or unlink through the ledger service; what happened, in words."""
    from mot.domain.ledger import Outcome
    from mot.domain.messages import LinkCustomers, Rejection, parse_message
    from mot.service.ledger import Incoming

    ledger = obj.services.ledger
    raw = orjson.dumps(message)
    checked = parse_message(raw, ledger.clock())
    if isinstance(checked, Rejection):
        raise click.ClickException(f"not recorded: {checked.reason}")
    assert isinstance(checked, LinkCustomers)
    [verdict] = ledger.record([Incoming(raw, f"cli:identity {message['type']}")]).verdicts
    low, high = checked.customer_ids
    pair = f"{low} and {high} (tenant {checked.tenant}, as of {checked.occurred_at})"
    if verdict.outcome in (Outcome.LINKED, Outcome.UNLINKED):
        return f"{verdict.outcome.value} {pair}"
    if verdict.outcome is Outcome.DUPLICATE:
        return f"duplicate: {pair} was already {checked.type}ed at that time; nothing recorded"
    assert verdict.rejection is not None
    raise click.ClickException(f"rejected: {verdict.rejection.reason}")


link = _pair_command("link", """Say that two customer ids of a tenant are one person.

    \b
    Examples:
      mot identity link --tenant acme zendesk:m1 x:maria --reason "handle in the ticket"
      mot identity link hubspot:501 email:10ef... --reason "same email" --at 2026-04-02T12:00:00Z
    """)
unlink = _pair_command("unlink", """Say that two customer ids of a tenant are not one person.

    \b
    Examples:
      mot identity unlink --tenant acme x:ben x:maria --reason "typo"
    """)
identity.add_command(link)
identity.add_command(unlink)

COMMANDS = [identity]
