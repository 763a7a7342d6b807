"""Who is whom: one person's ids, the links that make it, and its moments per id (SPEC §2).

`mot identity show` and `GET /v1/persons/{customer_id}` answer from the projection
store (the person, its ids, its linked pairs, its current moments) and from the
ledger (each link's events: reason, time, origin), through the `PairHistory` port.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol

from mot.domain.events import CustomersLinked, LinkEvent
from mot.domain.links import LinkType, PairEvidence
from mot.domain.timefmt import parse_utc, to_micros
from mot.projections.persons import MAX_EMAIL_LINKS, MAX_IDS
from mot.projections.ports import ProjectionStore, ViewRead


class PairHistory(Protocol):
    """The ledger's link and unlink events of pairs of customer ids."""

    def link_events(self, tenant: str, pairs: Collection[tuple[str, str]]
                    ) -> dict[tuple[str, str], list[LinkEvent]]:
        """Each pair's events in the order recorded (pairs in code-point order); a pair
        never linked nor unlinked is left out."""
        ...


class PersonService:
    """One person, as `mot identity show` prints it; the persons merge protection reports."""

    def __init__(self, projections: ProjectionStore, history: PairHistory) -> None:
        self.projections = projections
        self.history = history

    def show(self, tenant: str, customer_id: str) -> dict[str, Any] | None:
        """The person `customer_id` belongs to in `tenant`, or None when it has no current
        moment (an id without links and moments, say)."""
        found = self.projections.persons_of(customer_id, tenant)
        if not found:
            return None
        [(key, group)] = found
        [person] = self.projections.read_view(ViewRead("persons", customers=(key,)))
        ids: list[str] = person["customer_ids"]
        with self.projections.reader() as reader:
            pairs = reader.linked_pairs(tenant, ids)
            # Every pair one of its ids was ever in: the links taken back too.
            every_pair = reader.linked_pairs(tenant, ids, unlinked=True)
            moments = reader.customer_moments([(tenant, group)]).get((tenant, group), [])
        per_id = Counter(m.customer_id for m in moments)
        events = self.history.link_events(tenant, every_pair)
        links = []
        for low, high in pairs:
            history = [_event_record(e) for e in events.get((low, high), [])]
            # The evidence that decides the pair's state (SPEC §2: the latest; an unlink at
            # equal times).
            latest = max(events.get((low, high), []), key=_precedence, default=None)
            links.append({
                "customer_ids": [low, high],
                "occurred_at": None if latest is None else latest.occurred_at,
                "reason": None if latest is None else latest.reason,
                "origin": None if latest is None else latest.origin,
                "recorded_at": None if latest is None else latest.recorded_at,
                "history": history,
            })
        return {
            "tenant": tenant, "customer_id": person["customer_id"], "customer_ids": ids,
            "suspect": person["suspect"], "suspect_because": _suspect_because(person),
            "links": links,
            "history": link_history(events),
            "moments": {i: per_id.get(i, 0) for i in ids},
        }

    def suspects(self, limit: int = 20) -> list[dict[str, Any]]:
        """Persons merge protection reports (`mot status`): too many ids, or an `email:` id
        linked to too many."""
        return [person | {"suspect_because": _suspect_because(person)}
                for person in self.projections.read_view(
                    ViewRead("persons", {"suspect": 1}, order=(("ids", True),), limit=limit))]


def _suspect_because(person: dict[str, Any]) -> list[str]:
    out = []
    if person["ids"] > MAX_IDS:
        out.append(f"{person['ids']} ids (more than {MAX_IDS})")
    if person["email_links"] > MAX_EMAIL_LINKS:
        out.append(f"an email: id linked to {person['email_links']} ids"
                   f" (more than {MAX_EMAIL_LINKS})")
    return out


def link_history(events: Mapping[tuple[str, str], Sequence[LinkEvent]]) -> list[dict[str, Any]]:
    """Every link and unlink of these pairs in the order of their evidence's time (`occurred_at`;
    at equal times as recorded), each with its pair and whether it decides the pair's state
    now (SPEC §2: the latest evidence; an unlink at equal times)."""
    out = []
    for (low, high), pair_events in events.items():
        deciding = max(pair_events, key=_precedence, default=None)
        for e in pair_events:
            order = (to_micros(parse_utc(e.occurred_at)), e.recorded_at, low, high, e.version)
            out.append((order, {"customer_ids": [low, high], **_event_record(e),
                                "decides": e is deciding}))
    return [record for _, record in sorted(out, key=lambda o: o[0])]


def _event_record(event: LinkEvent) -> dict[str, Any]:
    return {"event": "linked" if isinstance(event, CustomersLinked) else "unlinked",
            "version": event.version, "occurred_at": event.occurred_at, "reason": event.reason,
            "origin": event.origin, "recorded_at": event.recorded_at}


def _precedence(event: LinkEvent) -> tuple[int, int]:
    kind: LinkType = "link" if isinstance(event, CustomersLinked) else "unlink"
    return PairEvidence(kind, to_micros(parse_utc(event.occurred_at))).precedence
