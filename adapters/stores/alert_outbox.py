"""The alerts outbox on SQL: raised alerts and their delivery state, in the store's own tables.

`alerts` holds each alert once (its `alert_id` is unique: raising it again, from a
rebuild, a replay or a page applied again, inserts nothing); it is written in the
projection engine's transaction (`insert_alerts`) and by the overdue check, both
under the projections' writer lock, so `seq` grows in commit order and a deliverer
that reads past a destination's cursor never skips an alert that commits later.

`alert_deliveries` holds one row per alert and destination: pending (with when it
is next due, and the lease of the deliverer sending it), delivered or failed.
`alert_cursors` holds how far each destination's deliveries were queued. Times are
microseconds since 1970 (UTC). Implements `mot.service.alerting.AlertOutbox`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

import orjson

from mot.adapters.stores.sql import SqlBackend, Tx, chunks

if TYPE_CHECKING:  # imported where used: the projection tables load this module for every query
    from mot.projections.alerts import Alert
    from mot.service.alerting import (
        AlertQuery,
        Claimed,
        OpenRequest,
        OutboxCounts,
        Outcome,
        StoredAlert,
    )

ALERT_DDL: Final = (
    """CREATE TABLE IF NOT EXISTS alerts (
    seq {serial}, alert_id TEXT NOT NULL UNIQUE, rule TEXT NOT NULL, tenant TEXT NOT NULL,
    customer_id TEXT NOT NULL, customer_ids TEXT NOT NULL, moment_id TEXT NOT NULL,
    occurred_us {bigint} NOT NULL, raised_us {bigint} NOT NULL, function TEXT NOT NULL,
    actor TEXT, channel TEXT NOT NULL, details TEXT NOT NULL, acked_us {bigint})""",
    "CREATE INDEX IF NOT EXISTS alerts_tenant ON alerts (tenant, raised_us)",
    """CREATE TABLE IF NOT EXISTS alert_cursors (
    destination TEXT PRIMARY KEY, seq {bigint} NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS alert_deliveries (
    destination TEXT NOT NULL, alert_id TEXT NOT NULL, seq {bigint} NOT NULL,
    state TEXT NOT NULL, attempts INTEGER NOT NULL, due_us {bigint} NOT NULL,
    lease_owner TEXT, lease_until_us {bigint}, last_error TEXT, settled_us {bigint},
    PRIMARY KEY (destination, alert_id))""",
    # A destination's due deliveries in the order they are claimed (`claim`).
    """CREATE INDEX IF NOT EXISTS alert_deliveries_next
    ON alert_deliveries (destination, state, due_us, seq)""",
    "DROP INDEX IF EXISTS alert_deliveries_due",  # (state, due_us), before alert_deliveries_next
)

COLUMNS: Final = ("alert_id", "rule", "tenant", "customer_id", "customer_ids", "moment_id",
                  "occurred_us", "raised_us", "function", "actor", "channel", "details")
SELECTED: Final = ", ".join(f"a.{c}" for c in (*COLUMNS, "acked_us", "seq")) + ", m.url"
FROM_ALERTS: Final = ("alerts a LEFT JOIN moments m"
                      " ON m.tenant = a.tenant AND m.moment_id = a.moment_id")
"""The alerts with their moment's `url`, read from the current moments rather than kept: an
amended url is the one sent, and an erased person's (SPEC §6) is gone with the moment."""
INSERT: Final = (f"INSERT INTO alerts ({', '.join(COLUMNS)}) VALUES"
                 f" ({', '.join('?' * len(COLUMNS))}) ON CONFLICT (alert_id) DO NOTHING")
PROJECTIONS_LOCK: Final = "projections"  # alerts are inserted under the projections' lock
DELIVERY_LOCK: Final = "alerts"


def create_alert_tables(backend: SqlBackend, tx: Tx) -> None:
    for statement in ALERT_DDL:
        tx.execute(backend.ddl(statement))


def insert_alerts(tx: Tx, alerts: Sequence[Alert]) -> None:
    """Each alert not raised before, inside the caller's (the projections') transaction."""
    tx.executemany(INSERT, alert_rows(alerts))


def alert_rows(alerts: Iterable[Alert]) -> list[tuple[Any, ...]]:
    """The alerts' rows of COLUMNS (the projections' session inserts them in bulk)."""
    return [_row(a) for a in alerts]


def _row(a: Alert) -> tuple[Any, ...]:
    return (a.alert_id, a.rule, a.tenant, a.customer_id, orjson.dumps(list(a.customer_ids)).decode(),
            a.moment_id, a.occurred_us, a.raised_us, a.function, a.actor, a.channel,
            orjson.dumps(dict(a.details)).decode())


def _stored(row: Sequence[Any]) -> StoredAlert:
    from mot.projections.alerts import Alert
    from mot.service.alerting import StoredAlert

    (alert_id, rule, tenant, customer_id, customer_ids, moment_id, occurred_us, raised_us,
     function, actor, channel, details, acked_us, seq, url) = row[:15]
    alert = Alert(alert_id, rule, tenant, customer_id, tuple(orjson.loads(customer_ids)),
                  moment_id, int(occurred_us), int(raised_us), function, actor, channel,
                  tuple(orjson.loads(details).items()), url)
    return StoredAlert(alert, int(seq), None if acked_us is None else int(acked_us))


class SqlAlertOutbox:
    """The outbox and its delivery state on a SqlBackend (`AlertOutbox`)."""

    def __init__(self, backend: SqlBackend) -> None:
        self.backend = backend

    # -- raising (the overdue check; the engine raises through its session) ------------
    def raise_alerts(self, alerts: Sequence[Alert]) -> int:
        if not alerts:
            return 0
        with self.backend.write(PROJECTIONS_LOCK) as tx:
            before = self._known(tx, [a.alert_id for a in alerts])
            insert_alerts(tx, [a for a in alerts if a.alert_id not in before])
        return len({a.alert_id for a in alerts} - before)

    def _known(self, tx: Tx, ids: Sequence[str]) -> set[str]:
        known: set[str] = set()
        for chunk in chunks(ids, self.backend.max_params):
            known |= {str(r[0]) for r in tx.query(
                f"SELECT alert_id FROM alerts WHERE alert_id {self.backend.in_list(len(chunk))}",
                self.backend.in_params(chunk))}
        return known

    # -- reading -------------------------------------------------------------------------
    def alerts(self, query: AlertQuery) -> list[StoredAlert]:
        where, params = ["1 = 1"], list[Any]()
        if query.tenant is not None:
            where.append("a.tenant = ?")
            params.append(query.tenant)
        if query.rule is not None:
            where.append("a.rule = ?")
            params.append(query.rule)
        if query.since_us is not None:
            where.append("a.raised_us >= ?")
            params.append(query.since_us)
        if query.alert_id is not None:
            where.append("a.alert_id = ?")
            params.append(query.alert_id)
        if query.failed:
            where.append("EXISTS (SELECT 1 FROM alert_deliveries d WHERE d.alert_id = a.alert_id"
                         " AND d.state = 'failed')")
        statement = (f"SELECT {SELECTED} FROM {FROM_ALERTS} WHERE {' AND '.join(where)}"
                     " ORDER BY a.seq")
        if query.limit is not None:
            statement += f" LIMIT {int(query.limit)}"
        with self.backend.read() as tx:
            found = [_stored(r) for r in tx.query(statement, params)]
            if not found:
                return found
            states = self._deliveries(tx, [s.alert.alert_id for s in found])
        return [s._replace(deliveries=states.get(s.alert.alert_id, ())) for s in found]

    def _deliveries(self, tx: Tx, ids: Sequence[str]
                    ) -> dict[str, tuple[tuple[str, str, int, str | None], ...]]:
        out: dict[str, list[tuple[str, str, int, str | None]]] = {}
        for chunk in chunks(ids, self.backend.max_params):
            for alert_id, destination, state, attempts, error in tx.query(
                    "SELECT alert_id, destination, state, attempts, last_error FROM"
                    f" alert_deliveries WHERE alert_id {self.backend.in_list(len(chunk))}"
                    " ORDER BY destination", self.backend.in_params(chunk)):
                out.setdefault(alert_id, []).append((destination, state, int(attempts), error))
        return {k: tuple(v) for k, v in out.items()}

    def ack(self, alert_id: str, at_us: int, tenant: str | None = None) -> StoredAlert | None:
        with self.backend.write(DELIVERY_LOCK) as tx:
            rows = tx.query(f"SELECT {SELECTED} FROM {FROM_ALERTS} WHERE a.alert_id = ?",
                            (alert_id,))
            if not rows or (tenant is not None and rows[0][2] != tenant):
                return None
            tx.execute("UPDATE alerts SET acked_us = ? WHERE alert_id = ? AND acked_us IS NULL",
                       (at_us, alert_id))
            # Someone acts on it: what is not delivered yet is not sent any more.
            tx.execute("UPDATE alert_deliveries SET state = 'acked', lease_owner = NULL,"
                       " lease_until_us = NULL WHERE alert_id = ? AND state IN ('pending', 'failed')",
                       (alert_id,))
            row = tx.query(f"SELECT {SELECTED} FROM {FROM_ALERTS} WHERE a.alert_id = ?",
                           (alert_id,))[0]
        return _stored(row)

    def counts(self, tenant: str | None = None) -> OutboxCounts:
        with self.backend.read() as tx:
            if tenant is None:
                alerts = int(tx.scalar("SELECT COUNT(*) FROM alerts") or 0)
                by_state = dict(tx.query("SELECT state, COUNT(*) FROM alert_deliveries"
                                         " GROUP BY state"))
            else:
                alerts = int(tx.scalar("SELECT COUNT(*) FROM alerts WHERE tenant = ?",
                                       (tenant,)) or 0)
                by_state = dict(tx.query(
                    "SELECT d.state, COUNT(*) FROM alert_deliveries d JOIN alerts a"
                    " ON a.alert_id = d.alert_id WHERE a.tenant = ? GROUP BY d.state", (tenant,)))
        from mot.service.alerting import OutboxCounts

        return OutboxCounts(alerts, int(by_state.get("pending", 0)),
                            int(by_state.get("delivered", 0)), int(by_state.get("failed", 0)))

    # -- delivering ---------------------------------------------------------------------
    def enqueue(self, destination: str, wants: Callable[[Alert], bool], limit: int,
                new_since_us: int | None = None) -> tuple[int, int]:
        """Queue the alerts raised since the destination's cursor (those it `wants`); a new
        destination's cursor starts after the alerts raised before `new_since_us`."""
        with self.backend.write(DELIVERY_LOCK) as tx:
            found = tx.scalar("SELECT seq FROM alert_cursors WHERE destination = ?",
                              (destination,))
            if found is None:
                cursor = int(tx.scalar("SELECT MAX(seq) FROM alerts WHERE raised_us < ?",
                                       (new_since_us,)) or 0) if new_since_us is not None else 0
                self._save_cursor(tx, destination, cursor)  # where it started, once
            else:
                cursor = int(found)
            rows = [_stored(r) for r in tx.query(
                f"SELECT {SELECTED} FROM {FROM_ALERTS} WHERE a.seq > ? ORDER BY a.seq LIMIT ?",
                (cursor, limit))]
            if not rows:
                return 0, 0
            queued = [(destination, s.alert.alert_id, s.seq, s.alert.raised_us)
                      for s in rows if s.acked_us is None and wants(s.alert)]
            tx.executemany(
                "INSERT INTO alert_deliveries (destination, alert_id, seq, state, attempts, due_us)"
                " VALUES (?, ?, ?, 'pending', 0, ?) ON CONFLICT (destination, alert_id) DO NOTHING",
                queued)
            self._save_cursor(tx, destination, rows[-1].seq)
        return len(rows), len(queued)

    def _save_cursor(self, tx: Tx, destination: str, seq: int) -> None:
        tx.execute("INSERT INTO alert_cursors (destination, seq) VALUES (?, ?) ON CONFLICT"
                   " (destination) DO UPDATE SET seq = excluded.seq", (destination, seq))

    def claim(self, destinations: Collection[str], owner: str, now_us: int, lease_us: int,
              limit: int) -> list[Claimed]:
        """Lease up to `limit` due deliveries to `owner`: no other deliverer takes them until
        the lease ends (a deliverer killed mid-batch leaves only its batch to send again)."""
        if not destinations:
            return []
        with self.backend.write(DELIVERY_LOCK) as tx:
            # One destination at a time, in its index's order (alert_deliveries_next): the scan
            # stops at `limit` rows, and only those are joined. One query over every
            # destination joined and sorted every pending delivery for each batch (PostgreSQL
            # without statistics, where autovacuum is off, chose that plan), so a claim's
            # cost grew with the backlog (bench/NOTES.md).
            found = [row for name in sorted(destinations) for row in tx.query(
                f"SELECT d.destination, d.attempts, d.due_us, {SELECTED} FROM"
                " (SELECT destination, alert_id, attempts, due_us, seq FROM alert_deliveries"
                "  WHERE destination = ? AND state = 'pending' AND due_us <= ?"
                "  AND (lease_until_us IS NULL OR lease_until_us < ?)"
                "  ORDER BY due_us, seq LIMIT ?) d"
                " JOIN alerts a ON a.alert_id = d.alert_id LEFT JOIN moments m"
                " ON m.tenant = a.tenant AND m.moment_id = a.moment_id",
                (name, now_us, now_us, limit))]
            rows = [(r[0], r[1], *r[3:]) for r in
                    sorted(found, key=lambda r: (r[2], r[-2], r[0]))[:limit]]  # due, seq, name
            tx.executemany(
                "UPDATE alert_deliveries SET lease_owner = ?, lease_until_us = ?"
                " WHERE destination = ? AND alert_id = ?",
                [(owner, now_us + lease_us, r[0], r[2]) for r in rows])
        from mot.service.alerting import Claimed

        return [Claimed(str(r[0]), int(r[1]), _stored(r[2:])) for r in rows]

    def settle(self, owner: str, outcomes: Iterable[Outcome]) -> int:
        """Record what happened to claimed deliveries (only while `owner` still holds them)."""
        rows = [(o.state, o.attempts, o.due_us, o.error, o.at_us, o.destination, o.alert_id, owner)
                for o in outcomes]
        with self.backend.write(DELIVERY_LOCK) as tx:
            if any(r[3] is not None for r in rows):
                rows = self._without_erased_answers(tx, rows)
            tx.executemany(
                "UPDATE alert_deliveries SET state = ?, attempts = ?, due_us = ?, last_error = ?,"
                " settled_us = ?, lease_owner = NULL, lease_until_us = NULL"
                " WHERE destination = ? AND alert_id = ? AND lease_owner = ?", rows)
        return len(rows)

    def _without_erased_answers(self, tx: Tx, rows: list[tuple[Any, ...]]
                                ) -> list[tuple[Any, ...]]:
        """The rows, with no receiver's answer for an alert of a person erased since it was
        claimed (erase_from_alerts dropped those there were then; this one came after)."""
        from mot.domain.erasure import is_erased_customer

        ids = sorted({str(r[6]) for r in rows if r[3] is not None})
        erased: set[str] = set()
        for chunk in chunks(ids, self.backend.max_params):
            erased |= {str(alert_id) for alert_id, customer in tx.query(
                f"SELECT alert_id, customer_id FROM alerts WHERE alert_id"
                f" {self.backend.in_list(len(chunk))}", self.backend.in_params(chunk))
                if is_erased_customer(str(customer))}
        return [(*r[:3], _unanswered(str(r[3])), *r[4:]) if r[3] is not None and r[6] in erased
                else r for r in rows]

    def open_requests(self, since_us: int, until_us: int) -> list[OpenRequest]:
        from mot.service.alerting import OpenRequest

        with self.backend.read() as tx:
            if not self.backend.table_exists(tx, "responses"):
                return []  # a store projected before responses existed
            rows = tx.query(
                "SELECT r.tenant, r.request_moment_id, r.customer_id, r.kind, r.channel,"
                " r.function, r.occurred_us, m.actor FROM responses r LEFT JOIN moments m"
                " ON m.tenant = r.tenant AND m.moment_id = r.request_moment_id"
                " WHERE r.response_moment_id IS NULL AND r.occurred_us >= ? AND r.occurred_us <= ?"
                " ORDER BY r.occurred_us, r.tenant, r.request_moment_id", (since_us, until_us))
        return [OpenRequest(str(t), str(m), str(c), str(k), str(ch), str(f), int(at), actor)
                for t, m, c, k, ch, f, at, actor in rows]

    def retry_failed(self, destinations: Collection[str], now_us: int) -> int:
        names = sorted(destinations)
        if not names:
            return 0
        with self.backend.write(DELIVERY_LOCK) as tx:
            count = int(tx.scalar(
                "SELECT COUNT(*) FROM alert_deliveries WHERE state = 'failed' AND destination"
                f" {self.backend.in_list(len(names))}", self.backend.in_params(names)) or 0)
            tx.execute(
                "UPDATE alert_deliveries SET state = 'pending', attempts = 0, due_us = ?,"
                " lease_owner = NULL, lease_until_us = NULL WHERE state = 'failed' AND destination"
                f" {self.backend.in_list(len(names))}", (now_us, *self.backend.in_params(names)))
        return count


def erase_from_alerts(tx: Tx, tenant: str, customer_ids: Sequence[str], pseudonym: str,
                      moments: Collection[str]) -> set[str]:
    """An erased person (SPEC §6) leaves the outbox's alerts without personal fields: theirs
    name the erasure's pseudonym and no actor, and another customer's alert whose trigger was
    one of their moments loses `trigger_actor`. The alerts stay (by id), so a rebuild raises
    none of them again. A failed delivery of any of these alerts keeps its status but not the
    receiver's answer, which may echo what it was sent (`_unanswered`). Returns the tables it
    changed (to scrub)."""
    changed: list[str] = []
    for cid in customer_ids:
        rows = tx.query("SELECT alert_id FROM alerts WHERE tenant = ? AND customer_id = ?",
                        (tenant, cid))
        tx.executemany("UPDATE alerts SET customer_id = ?, customer_ids = ?, actor = NULL"
                       " WHERE alert_id = ?",
                       [(pseudonym, orjson.dumps([pseudonym]).decode(), r[0]) for r in rows])
        changed += [str(r[0]) for r in rows]
    # Another person's alerts raised while one of these ids was linked to it name it among
    # their customer_ids: it leaves them (the person it was erased with is not theirs).
    # The database reads only the alerts whose text holds one of them (`_holding`), not
    # every alert of the tenant; each is then decoded and checked.
    erased = set(customer_ids)
    named = []
    listing: dict[str, str] = {}
    for cid in customer_ids:
        listing.update(tx.query("SELECT alert_id, customer_ids FROM alerts WHERE tenant = ?"
                                " AND customer_ids LIKE ? ESCAPE '!'",
                                (tenant, _holding(orjson.dumps(cid).decode()))))
    for alert_id, ids in listing.items():
        listed = orjson.loads(ids)
        if erased.intersection(listed):
            named.append((orjson.dumps([c for c in listed if c not in erased]).decode(), alert_id))
    tx.executemany("UPDATE alerts SET customer_ids = ? WHERE alert_id = ?", named)
    changed += [str(alert_id) for _, alert_id in named]
    if moments:
        triggered = []
        for alert_id, details in tx.query(
                "SELECT alert_id, details FROM alerts WHERE tenant = ? AND details LIKE ?"
                " ESCAPE '!'", (tenant, _holding('"trigger_actor":"'))):
            facts = orjson.loads(details)
            if facts.get("trigger_moment_id") in moments and facts.get("trigger_actor") is not None:
                facts["trigger_actor"] = None
                triggered.append((orjson.dumps(facts).decode(), alert_id))
        tx.executemany("UPDATE alerts SET details = ? WHERE alert_id = ?", triggered)
        changed += [str(alert_id) for _, alert_id in triggered]
    answers = [(_unanswered(str(error)), destination, alert_id)
               for alert_id in dict.fromkeys(changed)
               for destination, error in tx.query(
                   "SELECT destination, last_error FROM alert_deliveries WHERE alert_id = ?"
                   " AND last_error IS NOT NULL", (alert_id,))]
    tx.executemany("UPDATE alert_deliveries SET last_error = ? WHERE destination = ?"
                   " AND alert_id = ?", answers)
    return {table for table, rows in (("alerts", changed), ("alert_deliveries", answers)) if rows}


def _holding(text: str) -> str:
    """A LIKE pattern (escaped by '!') of the values that hold `text` (SQLite's LIKE ignores
    the case of ASCII letters: a few more rows, which the caller checks)."""
    return "%" + text.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"


ERASED_ANSWER: Final = "(the answer was erased with the person it named)"


def _unanswered(error: str) -> str:
    """A delivery's `last_error` without the receiver's answer: "HTTP 422: {...the alert it
    got...}" -> "HTTP 422: (the answer was erased ...)". What a receiver answers is its
    own, and many echo what they were sent: the customer's ids, the actor, the url."""
    head, sep, _ = error.partition(": ")
    return f"{head}: {ERASED_ANSWER}" if sep else error
