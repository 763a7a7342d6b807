"""Erasure on SQL (SPEC §6): implements `mot.service.erasure.ErasureStore`.

One write transaction holds the ledger's lock and the projections': it records
the erasure (`mot_erasures`: counts, a keyed digest, the reason, no ids) and the
ledger's `PersonErased` event (the same facts without the reason), marks the
person's data keys erased (`mot_erased_keys`: the sealed events then open as the
erased pseudo customer, adapters/stores/sealing.py), deletes the keys, puts keyed
digests of their ids on the suppression list, clears their personal fields from
the current moments (which keep counting in the per-tenant sums under the pseudo
id), deletes their per-customer rows, drops `trigger_actor` where it was theirs,
and purges quarantined messages that name their ids or moments. After the commit
the freed bytes leave the files (`SqlBackend.scrub`) of the tables it changed.

With the keys in a keystore of their own (MOT_KEYSTORE) the keys are deleted right
after the ledger's commit. The order is what makes a crash harmless: deleted first,
a crash before the ledger's commit would leave sealed events whose keys are gone
with no erasure to explain it (every read an error). Marked first, a key not yet
deleted is already unusable (sealing checks the mark before the key), and the next
`mot erase` or `--lift` deletes keys a stopped erasure left.
"""

from __future__ import annotations

import hmac
import re
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any

import orjson

from mot.adapters.stores import scratch_folders
from mot.adapters.stores.alert_outbox import erase_from_alerts
from mot.adapters.stores.codec import to_row
from mot.adapters.stores.ledger import SqlLedger, names_of
from mot.adapters.stores.projection_tables import REBUILD_SUFFIX, SPLIT_BY, SWAPPED
from mot.adapters.stores.sql import SqlBackend, Tx, chunks
from mot.domain.erasure import erased_customer, erasure_stream_id
from mot.domain.events import PersonErased
from mot.domain.quarantine import names_any, names_listed, read_said
from mot.domain.timefmt import format_utc
from mot.projections.schema import PROJECTIONS, SUMMED_FROM
from mot.service.erasure import ErasurePlan, ErasureRefused, Receipt

ERASURE_ORIGIN = "erasure"  # the origin of an erasure's event: no file, no broker, no request
# The projections whose rows belong to a customer (projections/schema.py): a person's leave
# them. Those a per-tenant sum is summed from (response times from responses, SPEC §6) keep
# her rows under the erasure's pseudo id (they hold no other personal field), as the current
# moments do; from the others they are deleted.
PER_CUSTOMER = tuple(name for name, p in PROJECTIONS.items()
                     if p.per_customer and name not in SUMMED_FROM)
RE_OWNED = tuple(name for name, p in PROJECTIONS.items() if p.per_customer and name in SUMMED_FROM)
SCRUBBED = "mot_erasure_scrubbed"  # erasures whose files were scrubbed (`_mark_scrubbed`)
FEW_LATER = 1000  # events past the projection's position up to which links are read from it
NOT_SEALED = ("this store's ledger keeps personal fields unencrypted (it was made before "
              "encryption): run `mot upgrade --encrypt` first, then erase")


def _say(line: str) -> None:
    print(f"mot: {line}", file=sys.stderr, flush=True)


def _now() -> str:
    return format_utc(datetime.now(UTC))


class SqlErasures:
    def __init__(self, backend: SqlBackend, ledger: SqlLedger) -> None:
        self.backend = backend
        self.ledger = ledger

    # -- who and what ------------------------------------------------------------------------
    def _person(self, tx: Tx, tenant: str, customer_id: str) -> list[str]:
        """The person's customer ids (SPEC §2 links): the id and every id connected to it by
        pairs whose state is linked. The projection's person groups (`members`, indexed)
        give them when it has read every link event the ledger holds (the service brings
        it up to date first); else the ledger's link events are read, all of them."""
        from mot.adapters.stores.topics import LINKED, UNLINKED
        from mot.domain.erasure import is_erased_customer
        from mot.projections.ports import LIVE

        projected = tx.query("SELECT position FROM projection_state WHERE name = ?", (LIVE,))
        # The events past the projection's position, read in order along the key (asked for
        # link topics alone, PostgreSQL scanned the whole ledger hoping for an early match).
        column = self.backend.position_column
        later = [str(r[0]) for r in tx.query(
            f"SELECT topic FROM stored_events WHERE {column} > ? ORDER BY {column} LIMIT ?",
            (int(projected[0][0]), FEW_LATER))] if projected else [LINKED]
        if len(later) < FEW_LATER and not {LINKED, UNLINKED}.intersection(later):
            group = tx.query("SELECT person FROM members WHERE customer_id = ? AND tenant = ?",
                             (customer_id, tenant))
            if not group:  # in no linked pair
                return [customer_id]
            return sorted({customer_id} | {str(r[0]) for r in tx.query(
                "SELECT customer_id FROM members WHERE person = ? AND tenant = ?",
                (group[0][0], tenant)) if not is_erased_customer(str(r[0]))})
        return self._person_in_ledger(tx, tenant, customer_id)

    def _person_in_ledger(self, tx: Tx, tenant: str, customer_id: str) -> list[str]:
        """`_person` from the ledger's link events. A link's ids are sealed; each carries a
        keyed digest of them, by which the pairs are followed, and only the ids reached are
        opened."""
        from mot.adapters.stores.topics import LINKED, UNLINKED
        from mot.domain.links import PairEvidence, is_linked
        from mot.domain.timefmt import parse_utc, to_micros

        keystore = self.ledger.sealing.keystore
        pairs: dict[str, tuple[list[str], list[dict[str, str]], list[PairEvidence]]] = {}
        for topic, state in tx.query("SELECT topic, state FROM stored_events WHERE topic IN (?, ?)",
                                     (LINKED, UNLINKED)):
            data = orjson.loads(bytes(state))
            if data.get("tenant") != tenant or "digests" not in data:
                continue
            entry = pairs.setdefault(data["link_id"], (data["digests"], data["sealed_ids"], []))
            entry[2].append(PairEvidence("link" if topic == LINKED else "unlink",
                                         to_micros(parse_utc(data["occurred_at"]))))
        neighbours: dict[str, list[tuple[str, dict[str, str], str]]] = {}
        for link_id, (digests, boxes, evidence) in pairs.items():
            if is_linked(evidence):
                for i in (0, 1):
                    neighbours.setdefault(digests[i], []).append(
                        (digests[1 - i], boxes[1 - i], f"{link_id}/{1 - i}"))
        start = keystore.digest(tenant, customer_id)
        found = {start: customer_id}
        frontier = [start]
        while frontier:
            reached = [(d, box, where) for digest in frontier for d, box, where in
                       neighbours.get(digest, ()) if d not in found]
            frontier = []
            for digest, box, where in reached:
                if digest in found:
                    continue
                link_id, index = where.rsplit("/", 1)
                opened = self.ledger.sealing.open_link_id(tx, tenant, link_id, int(index), box)
                if opened is None:  # erased before: not a customer id any more
                    continue
                found[digest] = opened
                frontier.append(digest)
        return sorted(found.values())

    def _tables(self, tx: Tx, base: Iterable[str]) -> list[str]:
        """These projection tables, and their rebuild's when a rebuild is under way (and the
        live tables a swap replaced, until they are dropped: projection_tables.SWAPPED)."""
        out = []
        for name in base:
            out.append(name)
            for suffix in (REBUILD_SUFFIX, SWAPPED):
                if self.backend.table_exists(tx, name + suffix):
                    out.append(name + suffix)
        return out

    def _groups(self, tx: Tx, tenant: str, ids: Sequence[str]) -> list[str]:
        """The person groups (`moments.person`) of these ids: an id's group in `members`
        when it is linked, else itself (the moments are indexed by group, not by id)."""
        groups = set(ids)
        for cid in ids:
            groups |= {str(r[0]) for r in tx.query(
                "SELECT person FROM members WHERE customer_id = ? AND tenant = ?", (cid, tenant))}
        return sorted(groups)

    def _moments(self, tx: Tx, table: str, tenant: str, ids: Sequence[str]) -> dict[str, list[str]]:
        """customer id -> its current moments' ids, in the current-moments table `table`."""
        out: dict[str, list[str]] = {cid: [] for cid in ids}
        for group in self._groups(tx, tenant, ids):
            for moment_id, cid in tx.query(
                    f"SELECT moment_id, customer_id FROM {table} WHERE tenant = ? AND person = ?",
                    (tenant, group)):
                if cid in out:
                    out[str(cid)].append(str(moment_id))
        return out

    def _quarantined(self, tx: Tx, tenant: str, ids: Iterable[str],
                     moments: Iterable[str]) -> list[int]:
        """The tenant's quarantined messages that name one of these customer ids or moment
        ids: as a value of a message (of this tenant, or a correction naming none), not as
        part of a longer text, nor in another tenant's message (another person, whose
        message an erasure must not lose, nor count in a dry run)."""
        customers = {n for n in ids if n}
        named = {m.lower() for m in moments if m}
        if not customers and not named:
            return []
        return [int(qid) for qid, raw, payload, names in tx.query(
                "SELECT id, raw, payload, names FROM quarantine"
                " WHERE tenant = ? OR tenant IS NULL", (tenant,))
                if names_listed(names_of(names), tenant, customers)
                or _names(bytes(payload) if payload is not None else bytes(raw), tenant,
                          customers, named)]

    def _receipt_digest(self, tenant: str, ids: Sequence[str]) -> str:
        secret = self.ledger.sealing.keystore.tenant_secret(tenant)
        return hmac.new(secret, "\n".join(sorted(ids)).encode(), sha256).hexdigest()

    # -- the use cases ----------------------------------------------------------------------
    def plan(self, tenant: str, customer_id: str) -> ErasurePlan:
        if not self.ledger.sealed():
            raise ErasureRefused(NOT_SEALED)
        keystore = self.ledger.sealing.keystore
        with self.backend.read() as tx:
            keystore.master(tx)
            ids = self._person(tx, tenant, customer_id)
            moments = self._moments(tx, "moments", tenant, ids)
            rows: dict[str, int] = {}
            for table in PER_CUSTOMER:
                rows[table] = sum(int(tx.scalar(
                    f"SELECT COUNT(*) FROM {table} WHERE tenant = ? AND customer_id = ?",
                    (tenant, cid)) or 0) for cid in ids)
            erased = {m for ms in moments.values() for m in ms}
            rows["amplifications (trigger_actor)"] = len(self._triggered(tx, "amplifications",
                                                                         tenant, erased))
            quarantined = len(self._quarantined(tx, tenant, ids, erased))
            digests = [keystore.digest(tenant, cid) for cid in ids]
            already = bool(tx.query(
                f"SELECT 1 FROM mot_suppressed WHERE tenant = ? AND digest"
                f" {self.backend.in_list(len(digests))}",
                (tenant, *self.backend.in_params(digests))))
        with_moments = sum(1 for ms in moments.values() if ms)
        return ErasurePlan(tenant, with_moments, len(ids) - with_moments,
                           sum(len(ms) for ms in moments.values()), rows, quarantined, already)

    def _triggered(self, tx: Tx, table: str, tenant: str, moments: set[str]) -> list[str]:
        """Amplifications (ids) whose trigger is one of these moments and names its actor."""
        if not moments:
            return []
        return [str(aid) for aid, trigger in tx.query(
            f"SELECT amplification_id, trigger_moment_id FROM {table}"
            " WHERE tenant = ? AND trigger_actor IS NOT NULL", (tenant,)) if trigger in moments]

    def erase(self, tenant: str, customer_id: str, reason: str) -> Receipt:
        if not self.ledger.sealed():
            raise ErasureRefused(NOT_SEALED)
        sealing = self.ledger.sealing
        keystore = sealing.keystore
        backend = self.backend
        # The publishers' changelog (imported here: the rest of the command needs none of it).
        from mot.adapters.stores.changelog import erasure_tombstones, unnamed_cursors

        keystore.master()  # a missing or wrong master key stops here, before anything changes
        self._finish_pending()
        touched: set[str] = set()
        waiting: dict[str, list[str]] = {}  # projection -> publishers its tombstones wait for
        whole: list[str] = []  # tables the backend could split by person, made whole
        started = time.monotonic()
        with backend.write("ledger") as tx:
            backend.erasing(tx)
            if backend.splits:
                whole = [t for t in SPLIT_BY if backend.table_exists(tx, t)
                         and not backend.is_split(tx, t)]
            ids = self._person(tx, tenant, customer_id)
            digests = {cid: keystore.digest(tenant, cid) for cid in ids}
            erasure = int(tx.scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM mot_erasures"))
            pseudo = erased_customer(erasure)
            keys = keystore.key_ids_of(tx, tenant, ids)
            moments = self._moments(tx, "moments", tenant, ids)
            erased_moments = {m for ms in moments.values() for m in ms}
            done = self._done(tx, tenant, list(digests.values())) if not keys and not \
                erased_moments else None
            if done is not None and not self._scrubbed(tx, done.erasure):
                # Erased already, and a run stopped before its files were scrubbed: nothing
                # to record again; make sure the files hold nothing, and answer its receipt.
                touched |= {*PER_CUSTOMER, *RE_OWNED, "moments", "tombstones", "quarantine"}
                if not keystore.separate:
                    touched.add("mot_keys")
                touched |= {t for t in ("alerts", "alert_deliveries")
                            if backend.table_exists(tx, t)}
            if done is not None:
                # A publisher stopped between sending erasure tombstones and its scrub leaves
                # their dead rows behind. (Scrubbed, the rest is not rewritten again: a client
                # retrying POST /v1/erasures rewrote every table of the store, PostgreSQL's
                # under exclusive locks, each time: seconds of every tenant's reads and writes.)
                touched |= {t for t in ("publisher_state", "mot_erasure_tombstones")
                            if backend.table_exists(tx, t)}
            if done is None:
                with_moments = sum(1 for ms in moments.values() if ms)
                now = _now()
                receipt = Receipt(erasure, tenant, now, reason, with_moments, len(ids) - with_moments,
                                  len(erased_moments), self._receipt_digest(tenant, ids))
                tx.execute("INSERT INTO mot_erasures (id, tenant, erased_at, reason, ids_with_moments,"
                           " ids_without_moments, moments, digest) VALUES (?,?,?,?,?,?,?,?)",
                           (erasure, tenant, now, reason, receipt.customer_ids_with_moments,
                            receipt.customer_ids_without_moments, receipt.moments, receipt.digest))
                # The ledger's own record of it (SPEC §6): the receipt's facts, no personal
                # data, no reason; `mot kafka export` sends it, a rebuild reads past it.
                event = PersonErased(erasure_stream_id(tenant, erasure), 1, tenant, erasure,
                                     receipt.customer_ids_with_moments,
                                     receipt.customer_ids_without_moments, receipt.moments,
                                     receipt.digest, now, ERASURE_ORIGIN)
                backend.insert_stored_events(
                    tx, [to_row(event, backend.stream_id_param(event.erasure_id))])
                tx.executemany("INSERT INTO mot_erased_keys (key_id, erasure) VALUES (?, ?)",
                               [(key_id, erasure) for key_id in keys.values()])
                tx.executemany("INSERT INTO mot_suppressed (tenant, digest, erasure) VALUES (?, ?, ?)"
                               " ON CONFLICT (tenant, digest) DO UPDATE SET erasure = excluded.erasure",
                               [(tenant, d, erasure) for d in digests.values()])
                if not keystore.separate and keystore.destroy(tx, list(keys.values())):
                    touched.add("mot_keys")
                # Rows it changes carry the position of its PersonErased event: after every
                # version a publisher's cursor may have reached (a cursor is (version, key)).
                version = int(tx.scalar(f"SELECT MAX({backend.position_column})"
                                        " FROM stored_events"))
                groups = self._groups(tx, tenant, ids)

                def change(table: str, statement: str, rows: Sequence[Sequence[Any]],
                           held: Sequence[str] | None = None) -> None:
                    """Run `statement` for each row; a table it changed is scrubbed after
                    (of a split table, the parts `held` that held its rows)."""
                    if rows:
                        tx.executemany(statement, rows)
                        if tx.cursor.rowcount:
                            touched.update([table] if held is None else held)

                def parts(table: str, where: str, values: Sequence[str]) -> list[str] | None:
                    """Of a table split by person (PostgreSQL), the parts holding the rows
                    of this tenant whose `where` column is one of `values`, found before
                    the rows change (an update to the pseudo id moves them to its part)."""
                    if not backend.split_tables or not values:
                        return None
                    return backend.holding(
                        tx, table, f"tenant = ? AND {where} {backend.in_list(len(values))}",
                        (tenant, *backend.in_params(values)))

                for table in self._tables(tx, ["moments"]):
                    held = parts(table, "person", groups)
                    # The person group (SPEC §2 links) may be an erased id too: the pseudo
                    # id's moments form a group of their own.
                    # The rows of each group's erased ids only: every group with every id
                    # made groups x ids rows, and a person is a group per id (an id is its own
                    # group too), so a person of 20,000 linked ids made 4 * 10^8 of them.
                    wanted = set(ids)
                    change(table,
                           f"UPDATE {table} SET customer_id = ?, person = ?, actor = NULL,"
                           " url = NULL, source_id = NULL, attributes = NULL"
                           " WHERE tenant = ? AND person = ? AND customer_id = ?",
                           [(pseudo, pseudo, tenant, group, str(cid)) for group in groups
                            for (cid,) in tx.query(f"SELECT DISTINCT customer_id FROM {table}"
                                                   " WHERE tenant = ? AND person = ?",
                                                   (tenant, group))
                            if cid in wanted],
                           held)
                # The erased ids' links and person groups (the ledger's link events stay sealed).
                for table in self._tables(tx, ["members"]):
                    change(table, f"DELETE FROM {table} WHERE customer_id = ? AND tenant = ?",
                           [(cid, tenant) for cid in ids], parts(table, "customer_id", ids))
                for table in self._tables(tx, ["links"]):
                    for side in ("low", "high"):
                        change(table, f"DELETE FROM {table} WHERE tenant = ? AND {side} = ?",
                               [(tenant, cid) for cid in ids])
                for table in self._tables(tx, RE_OWNED):
                    change(table, f"UPDATE {table} SET customer_id = ?, version = ?"
                           " WHERE tenant = ? AND customer_id = ?",
                           [(pseudo, version, tenant, cid) for cid in ids],
                           parts(table, "customer_id", ids))
                # The person's amplifications are keyed by moment id, which names no one: the
                # publisher sends a tombstone for each (`mot kafka publish`). Rows keyed by a
                # customer id get theirs from keys kept apart until every publisher that
                # published the projection has sent them (adapters/stores/changelog.py).
                waiting = erasure_tombstones(backend, tx, tenant, ids, version, erasure)
                gone = [str(r[0]) for cid in ids for r in tx.query(
                    "SELECT amplification_id FROM amplifications WHERE tenant = ?"
                    " AND customer_id = ?", (tenant, cid))]
                # A statement a chunk, not one a row: a person may have thousands.
                for part in chunks([(f"{tenant}/{aid}",) for aid in gone], backend.max_params):
                    # WHERE TRUE: SQLite would read ON CONFLICT as a join's constraint.
                    tx.execute("INSERT INTO tombstones (projection, row_key, version)"
                               " SELECT 'amplifications', *, ? FROM "
                               + backend.rows_source(("text",), len(part))
                               + " WHERE TRUE ON CONFLICT (projection, row_key)"
                               " DO UPDATE SET version = excluded.version",
                               (version, *backend.rows_params(part)))
                for table in self._tables(tx, PER_CUSTOMER):
                    change(table, f"DELETE FROM {table} WHERE tenant = ? AND customer_id = ?",
                           [(tenant, cid) for cid in ids], parts(table, "customer_id", ids))
                for table in self._tables(tx, ["amplifications"]):
                    triggered = self._triggered(tx, table, tenant, erased_moments)
                    # Other customers' rows: in whichever parts hold those customers.
                    change(table, f"UPDATE {table} SET trigger_actor = NULL, version = ?"
                           " WHERE tenant = ? AND amplification_id = ?",
                           [(version, tenant, aid) for aid in triggered],
                           parts(table, "amplification_id", triggered))
                touched |= erase_from_alerts(tx, tenant, ids, pseudo, erased_moments)
                for table in self._tables(tx, ["tombstones"]):
                    change(table, f"DELETE FROM {table} WHERE row_key = ?",
                           [(f"{tenant}/{cid}",) for cid in ids])
                purged = self._quarantined(tx, tenant, ids, erased_moments)
                change("quarantine", "DELETE FROM quarantine WHERE id = ?", [(q,) for q in purged])
                if backend.table_exists(tx, "publisher_state"):
                    # A cursor names the row it stopped at, hers maybe; and on PostgreSQL
                    # the versions it had before stay in dead rows: the small table is
                    # scrubbed whenever a publisher keeps one.
                    tenant_keys = {f"{tenant}/{cid}" for cid in ids}
                    unnamed_cursors(tx, lambda _p, _k, values: values[0] in tenant_keys or (
                        values[0] == tenant and any(v in ids for v in values[1:])))
                    touched.add("publisher_state")
        committed = time.monotonic()
        self._drop_stopped_stages()
        # The scratch stores verifies killed with SIGKILL left hold her moments opened too (in
        # this machine's temporary folders, wherever this user's mot made them); a live
        # verify's stays: it removes it when done.
        scratch_folders.remove_abandoned(everywhere=True)
        if done is not None:
            backend.scrub(sorted(touched))
            self._mark_scrubbed(done.erasure)
            return done
        if keystore.separate:
            keystore.destroy(None, list(keys.values()))
            keystore.backend.scrub(["mot_keys"])
        if not touched:
            # Only the suppression was recorded: "removing the freed bytes from the files ()"
            # named an empty list of tables and then timed a removal of nothing.
            _say(f"erased in {committed - started:.2f} s; no table held any of their rows")
        else:
            _say(f"erased in {committed - started:.2f} s; removing the freed bytes from the files"
                 f" ({', '.join(sorted(touched))})")
        backend.scrub(sorted(touched), waiting=lambda: _say(
            "waiting for transactions begun before this erasure to end (other sessions of"
            " the database server): until they do, the freed rows cannot leave the files"))
        self._mark_scrubbed(receipt.erasure)
        if touched:
            _say(f"the files hold none of it {time.monotonic() - committed:.2f} s later")
        if rewritten := [t for t in whole if t in touched]:
            # An older store's, or one made with the layout asked whole: each erasure
            # rewrites these in proportion to the store (docs/erasure.md).
            _say(f"{', '.join(rewritten)} are whole tables, rewritten whole by every erasure;"
                 f" {backend.split_hint}, so that an erasure rewrites the parts holding the"
                 " person's rows only (docs/erasure.md)")
        for projection, publishers in sorted(waiting.items()):
            _say(f"{projection}: the tombstones of the person's rows wait for `mot kafka publish`"
                 f" (publisher {', '.join(publishers)}); their keys, the person's ids, stay in"
                 " mot_erasure_tombstones until every publisher has sent them")
        return receipt

    def _scrubbed(self, tx: Tx, erasure: int) -> bool:
        """Whether erasure `erasure`'s files were scrubbed (`_mark_scrubbed`)."""
        return self.backend.table_exists(tx, SCRUBBED) and bool(tx.query(
            f"SELECT 1 FROM {SCRUBBED} WHERE erasure = ?", (erasure,)))

    def _mark_scrubbed(self, erasure: int) -> None:
        """Erasure `erasure`'s files hold nothing of the person any more: running it again
        (a retry) rewrites no table of hers again."""
        with self.backend.write("ledger") as tx:
            tx.execute(self.backend.ddl(f"CREATE TABLE IF NOT EXISTS {SCRUBBED}"
                                        " (erasure {bigint} PRIMARY KEY)"))
            tx.execute(f"INSERT INTO {SCRUBBED} (erasure) VALUES (?) ON CONFLICT DO NOTHING",
                       (erasure,))

    def _drop_stopped_stages(self) -> None:
        """Drop the stages a stopped rebuild left: a rebuild's workers stage moments with
        their personal fields opened (adapters/stores/projection_tables.py), and they stay
        until the next rebuild. Not while a rebuild runs: it reads its stages, and starts
        again after this erasure anyway (dropping them first: `ErasedDuringRebuild`)."""
        def running() -> None:
            raise _RebuildRunning

        try:
            with self.backend.process_lock("rebuild", running):
                self.backend.drop_stages()
        except _RebuildRunning:
            pass

    def _done(self, tx: Tx, tenant: str, digests: Sequence[str]) -> Receipt | None:
        """The receipt of the erasure that put all these ids on the suppression list."""
        rows = tx.query(f"SELECT DISTINCT erasure FROM mot_suppressed WHERE tenant = ? AND digest"
                        f" {self.backend.in_list(len(digests))}",
                        (tenant, *self.backend.in_params(digests)))
        count = int(tx.scalar(f"SELECT COUNT(*) FROM mot_suppressed WHERE tenant = ? AND digest"
                              f" {self.backend.in_list(len(digests))}",
                              (tenant, *self.backend.in_params(digests))) or 0)
        if count < len(digests) or len(rows) != 1:
            return None
        found = [r for r in self.receipts(tenant) if r.erasure == int(rows[0][0])]
        return found[0] if found else None

    def _finish_pending(self) -> None:
        """Keys an erasure marked but a stopped process did not delete (MOT_KEYSTORE)."""
        keystore = self.ledger.sealing.keystore
        if not keystore.separate:
            return
        with self.backend.read() as tx:
            marked = [str(r[0]) for r in tx.query("SELECT key_id FROM mot_erased_keys")]
        left = keystore.existing(marked)
        if left and keystore.destroy(None, left):
            keystore.backend.scrub(["mot_keys"])

    def lift(self, tenant: str, customer_id: str) -> int:
        keystore = self.ledger.sealing.keystore
        # A key an erasure marked must be gone before the ids may be sealed again: a new key
        # is made for them, never the erased one found by their digest.
        self._finish_pending()
        with self.backend.write("ledger") as tx:
            ids = self._person(tx, tenant, customer_id)
            digests = [keystore.digest(tenant, cid) for cid in ids]
            erasures = {int(r[0]) for r in tx.query(
                f"SELECT erasure FROM mot_suppressed WHERE tenant = ? AND digest"
                f" {self.backend.in_list(len(digests))}", (tenant, *self.backend.in_params(digests)))}
            tx.executemany("DELETE FROM mot_suppressed WHERE tenant = ? AND digest = ?",
                           [(tenant, d) for d in digests])
            tx.executemany("UPDATE mot_erasures SET lifted_at = ? WHERE id = ?",
                           [(_now(), e) for e in sorted(erasures)])
        return len(erasures)

    def receipts(self, tenant: str | None = None) -> list[Receipt]:
        statement = ("SELECT id, tenant, erased_at, reason, ids_with_moments, ids_without_moments,"
                     " moments, digest, lifted_at FROM mot_erasures")
        params: tuple[Any, ...] = ()
        if tenant is not None:
            statement += " WHERE tenant = ?"
            params = (tenant,)
        with self.backend.read() as tx:
            rows = tx.query(statement + " ORDER BY id", params)
        return [Receipt(int(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4]), int(r[5]),
                        int(r[6]), str(r[7]), r[8]) for r in rows]

    def encrypt(self) -> int:
        return self.ledger.encrypt()


class _RebuildRunning(Exception):
    """Another process holds the store's rebuild lock."""


_DELIMITER = rb'\s",;'


def _names(message: bytes, tenant: str, ids: set[str], moments: set[str]) -> bool:
    """Whether a quarantined message names one of these customer ids or (canonical) moment
    ids of `tenant`: not when its bytes say another tenant (`read_said`). A JSON object names
    one as a whole text anywhere in it, escapes decoded (`names_any`); anything else (a
    malformed line) when it holds it between delimiters."""
    data, said = read_said(message)
    if said is not None and said != tenant:
        return False
    if isinstance(data, dict):
        return names_any(data, ids, moments)
    return any(re.search(rb"(?:^|(?<=[" + _DELIMITER + rb"]))" + re.escape(name.encode())
                         + rb"(?=[" + _DELIMITER + rb"]|$)", message,
                         re.IGNORECASE if name in moments else 0) for name in ids | moments)


def receipt_json(receipt: Receipt) -> bytes:
    return orjson.dumps(receipt.as_dict(), option=orjson.OPT_INDENT_2)
