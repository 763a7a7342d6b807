"""Who is whom: one person's ids, the links that make it, and its moments per id (SPEC §2).

`mot identity show` and `GET /v1/persons/{customer_id}` answer from the projection
store (the person, its ids, its linked pairs, its current moments) and from the
ledger (each link's events: reason, time, origin), through the `PairHistory` port.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Protocol

from mot.domain.events import CustomersLinked, LinkEvent
from mot.domain.links import LinkType, PairEvidence
from mot.domain.timefmt import parse_utc, to_micros
from mot.projections.persons import MAX_EMAIL_LINKS, MAX_IDS, PersonLimits
from mot.projections.ports import ProjectionStore, ViewRead
from mot.service.config import DEFAULT_PATH, ConfigError, did_you_mean, read_toml


class PairHistory(Protocol):
    """The ledger's link and unlink events of pairs of customer ids."""

    def link_events(self, tenant: str, pairs: Collection[tuple[str, str]]
                    ) -> dict[tuple[str, str], list[LinkEvent]]:
        """Each pair's events in the order recorded (pairs in code-point order); a pair
        never linked nor unlinked is left out."""
        ...


PERSON_KEYS: Final = frozenset({"max_ids", "max_email_links"})


def person_limits(data: Mapping[str, Any], path: str = "<config>") -> PersonLimits:
    """Merge protection's limits from a parsed mot.toml: `[persons]`, and a tenant's own in
    `[tenants.NAME.persons]` (each key optional; the defaults are 50 ids and 10 ids linked to
    one `email:` id). A bad key or value is one ConfigError naming it."""
    def table(value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table")
        for key in sorted(set(value) - PERSON_KEYS):
            raise ConfigError(f"{where}: unknown key {key!r}{did_you_mean(key, PERSON_KEYS)}"
                              f" (allowed: {', '.join(sorted(PERSON_KEYS))})")
        return value

    def limit(section: dict[str, Any], key: str, where: str) -> int | None:
        value = section.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{where} {key}: {value!r} is no limit: expected a whole number"
                              " of 1 or more, like 50")
        return value

    top = table(data.get("persons", {}), f"{path}: [persons]")
    tenants = []
    for tenant, section in sorted(data.get("tenants", {}).items()):
        if isinstance(section, dict) and "persons" in section:
            where = f"{path}: [tenants.{tenant}.persons]"
            own = table(section["persons"], where)
            tenants.append((tenant, limit(own, "max_ids", where),
                            limit(own, "max_email_links", where)))
    where = f"{path}: [persons]"
    return PersonLimits(limit(top, "max_ids", where) or MAX_IDS,
                        limit(top, "max_email_links", where) or MAX_EMAIL_LINKS, tuple(tenants))


def load_person_limits(path: str | Path | None = None) -> PersonLimits:
    """The limits of `path`, else of `MOT_CONFIG`, else of ./mot.toml when it exists; the
    defaults when there is none."""
    chosen = path or os.environ.get("MOT_CONFIG") or (
        DEFAULT_PATH if os.path.exists(DEFAULT_PATH) else None)
    return PersonLimits() if chosen is None else person_limits(read_toml(chosen), str(chosen))


class PersonService:
    """One person, as `mot identity show` prints it; the persons merge protection reports."""

    def __init__(self, projections: ProjectionStore, history: PairHistory,
                 limits: Callable[[], PersonLimits] = PersonLimits) -> None:
        self.projections = projections
        self.history = history
        self.limits = limits  # read when asked (mot.toml's [persons])

    def show(self, tenant: str, customer_id: str) -> dict[str, Any] | None:
        """The person `customer_id` belongs to in `tenant`, or None when it has no current
        moment (an id without links and moments, say)."""
        # One read transaction for the person, her row, her pairs and moments (each its own
        # cost PostgreSQL a pooled connection's check, a BEGIN and a COMMIT), the ledger's
        # link events too where they are read from the same store.
        with self.projections.one_read():
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
            events = self.history.link_events(tenant, every_pair)
        per_id = Counter(m.customer_id for m in moments)
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
            "suspect": person["suspect"],
            "suspect_because": _suspect_because(person, self.limits().of(tenant)),
            "links": links,
            "history": link_history(events),
            "moments": {i: per_id.get(i, 0) for i in ids},
        }

    def suspects(self, limit: int = 20, tenant: str | None = None) -> list[dict[str, Any]]:
        """Persons merge protection reports (`mot status`): too many ids, or an `email:` id
        linked to too many (of `tenant` only, when given)."""
        limits = self.limits()
        equals: dict[str, Any] = {"suspect": 1} if tenant is None else {"suspect": 1,
                                                                         "tenant": tenant}
        return [person | {"suspect_because": _suspect_because(person, limits.of(person["tenant"]))}
                for person in self.projections.read_view(
                    ViewRead("persons", equals, order=(("ids", True),), limit=limit))]


def _suspect_because(person: dict[str, Any], limits: tuple[int, int]) -> list[str]:
    max_ids, max_email_links = limits
    out = []
    if person["ids"] > max_ids:
        out.append(f"{person['ids']} ids (more than {max_ids})")
    if person["email_links"] > max_email_links:
        out.append(f"an email: id linked to {person['email_links']} ids"
                   f" (more than {max_email_links})")
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
