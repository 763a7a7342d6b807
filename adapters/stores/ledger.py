"""The ledger store on SQL: eventsourcing's stored events plus mot's quarantine table.

A moment's stream is `moment_stream_id(tenant, moment_id)` (SPEC §2 scopes moment
ids by tenant). `ledger_tenants` lists the tenants that have moments, so that a
correction without `tenant` can be looked up in each of them; a store written
before ids were scoped (its streams named by the moment id alone) is upgraded in
place when it is first opened (`_scope_streams_by_tenant`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast
from uuid import UUID

from mot.adapters.stores.sql import SqlBackend
from mot.domain.timefmt import format_utc

if TYPE_CHECKING:
    # The events, their codec, the quarantine's records and the write path (pydantic
    # behind it) load only when a method needs them: `mot query`, which opens the ledger
    # only to see how far it goes, starts without them (start-up is most of its time).
    from mot.adapters.stores.codec import StoredRow
    from mot.adapters.stores.sealing import Sealing
    from mot.domain.events import LedgerEvent, LinkEvent
    from mot.domain.identity import MomentKey
    from mot.domain.ledger import Pair, Stream
    from mot.domain.quarantine import Quarantined
    from mot.service.ports import Append, Loaded

Key = TypeVar("Key")  # what `SqlLedger._events` gives each stream's events by

QUARANTINE_DDL = """
CREATE TABLE IF NOT EXISTS quarantine (
    id {serial},
    digest TEXT NOT NULL UNIQUE,
    raw {blob} NOT NULL,
    payload {blob},
    origin TEXT NOT NULL,
    last_origin TEXT NOT NULL,
    field TEXT NOT NULL,
    reason TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    repeats INTEGER NOT NULL,
    waits_for TEXT,
    waits_tenant TEXT,
    names TEXT,
    tenant TEXT
)"""

# A correction rejected only because its moment is not recorded waits for it (SPEC §2):
# `waits_for` is that moment's id, `waits_tenant` its tenant (NULL: the id in any tenant).
# Few rows wait: recording a batch asks this index whether any does before looking further.
WAITING_DDL = ("CREATE INDEX IF NOT EXISTS quarantine_waiting ON quarantine (waits_for)"
               " WHERE waits_for IS NOT NULL")
WAITING_COLUMNS = ("waits_for", "waits_tenant")
# Schema 14: the (tenant, customer id)s a vendor's record the quarantine keeps names, as JSON
# (`Rejected.names`); NULL for a message whose bytes say whom it names.
NAMES_COLUMN = "names"
# Schema 15: the tenant whose erasures alone may purge an entry (`erased_with`), NULL when any
# tenant's may: an erasure reads its tenant's entries and the NULL ones, not every tenant's.
ERASED_WITH_DDL = "CREATE INDEX IF NOT EXISTS quarantine_tenant ON quarantine (tenant)"

# A rebuild asks of each event whether a later event of its moment exists. Only
# amendments and retractions are later events (about 1% of them): this index holds
# those alone, so the question is answered from a few cached pages rather than from
# random reads of the whole (originator_id, originator_version) index.
CORRECTIONS_DDL = ("CREATE INDEX IF NOT EXISTS stored_events_corrections"
                   " ON stored_events (originator_id, originator_version)"
                   " WHERE originator_version > 1")

TENANTS_DDL = "CREATE TABLE IF NOT EXISTS ledger_tenants (tenant TEXT PRIMARY KEY)"

# Steps of an upgrade that rewrites the ledger, each resumable from its saved position.
UPGRADES_DDL = """
CREATE TABLE IF NOT EXISTS mot_upgrades (
    step TEXT PRIMARY KEY,
    position {bigint} NOT NULL,
    done INTEGER NOT NULL
)"""
SCOPE_STEP = "streams scoped by tenant"
SEALED_STEP = "ledger sealed"  # done: personal fields are sealed (adapters/stores/sealing.py)
UPGRADE_BATCH = 5000
LINKS_OPENED = 2048  # link events opened at once by a rebuild's read of them (two keys each)

QUARANTINE_COLUMNS = (
    "id, raw, payload, origin, last_origin, field, reason, first_seen, last_seen, repeats,"
    " waits_for, waits_tenant, names"
)


class SqlLedger:
    """Implements the LedgerStore port on a SqlBackend."""

    def __init__(self, backend: SqlBackend) -> None:
        self.backend = backend
        if not backend.ready:
            with backend.write("schema") as tx:
                tx.execute(backend.ddl(QUARANTINE_DDL))
                self._add_waiting(tx)
                _add_names(tx)
                _add_erased_with(tx)
                tx.execute(CORRECTIONS_DDL)
                tx.execute(TENANTS_DDL)
                tx.execute(backend.ddl(UPGRADES_DDL))
                _create_sealing(tx, backend)
            self._scope_streams_by_tenant()
        self._sealing: Sealing | None = None
        self._sealed: bool | None = None
        self._serving = False

    @property
    def sealing(self) -> Sealing:
        """Keys and sealed fields (adapters/stores/sealing.py), made on first use."""
        if self._sealing is None:
            from mot.adapters.stores.keystore import open_keystore
            from mot.adapters.stores.sealing import Sealing

            self._sealing = Sealing(self.backend, open_keystore(
                self.backend, getattr(self.backend, "path", None)))
            if self._serving:
                self._sealing.keystore.serving()
        return self._sealing

    def serving(self) -> None:
        """This process serves for as long as it runs (mot serve): its keystore keeps fewer
        customers' keys (Keystore.serving), whenever it is opened."""
        self._serving = True
        if self._sealing is not None:
            self._sealing.keystore.serving()

    def sealed(self, tx: Any | None = None) -> bool:
        """Whether the ledger seals personal fields (a new store, or after `mot upgrade --encrypt`)."""
        if not self._sealed:  # asked again until true: `mot upgrade --encrypt` may finish meanwhile
            statement = "SELECT done FROM mot_upgrades WHERE step = ?"
            if tx is None:
                with self.backend.read() as read:
                    rows = read.query(statement, (SEALED_STEP,))
            else:
                rows = tx.query(statement, (SEALED_STEP,))
            self._sealed = bool(rows and rows[0][0])
        return self._sealed

    def record(self, keys: Collection[tuple[str | None, str]],
               plan: Callable[[Loaded], Append], pairs: Collection[str] = (),
               stream_ids: Mapping[tuple[str, str], str] | None = None) -> Append:
        from mot.adapters.stores.codec import to_row
        from mot.domain.events import CustomersLinked, CustomersUnlinked, MomentRecorded
        from mot.domain.quarantine import erased_with
        from mot.service.ports import Loaded

        backend = self.backend
        stream_id_param, moment_param = backend.stream_id_param, backend.moment_stream_param
        with backend.write("ledger") as tx:
            backend.point_reads(tx)
            # A stream id made ahead (a parse worker's SHA-1) is only put in the store's form.
            made_ahead = stream_ids or {}
            ids_of = {key: moment_param(*key) if (made := made_ahead.get(key)) is None
                      else stream_id_param(made) for key in self._candidates(tx, keys)}
            streams = self._streams(tx, ids_of)
            waiting = self._waiting(tx, keys, streams) if len(streams) < len(ids_of) else ()
            append = plan(Loaded(streams, self._pairs(tx, pairs) if pairs else {}, waiting))
            ids = []
            tenants: set[str] = set()
            for event in append.events:
                if type(event) is MomentRecorded:
                    tenants.add(event.tenant)
                elif isinstance(event, CustomersLinked | CustomersUnlinked):
                    ids.append(stream_id_param(event.link_id))
                    continue
                key = (event.tenant, event.moment_id)
                stream_id = ids_of.get(key)
                if stream_id is None:
                    stream_id = ids_of[key] = moment_param(*key)
                ids.append(stream_id)
            if ids and self.sealed(tx):
                rows = self._sealed_rows(tx, append.events, ids)
            else:
                rows = [to_row(event, stream_id)
                        for event, stream_id in zip(append.events, ids, strict=True)]
            backend.insert_stored_events(tx, rows)
            if tenants:
                tx.executemany("INSERT INTO ledger_tenants (tenant) VALUES (?)"
                               " ON CONFLICT (tenant) DO NOTHING", [(t,) for t in tenants])
            now = format_utc(datetime.now(UTC))
            if append.rejected:
                tx.executemany(
                    "INSERT INTO quarantine (digest, raw, payload, origin, last_origin, field,"
                    " reason, first_seen, last_seen, repeats, waits_for, waits_tenant, names, tenant)"
                    " VALUES (?,?,?,?,?,?,?,?,?,1,?,?,?,?)"
                    " ON CONFLICT (digest) DO UPDATE SET repeats = quarantine.repeats + 1,"
                    " last_seen = excluded.last_seen, last_origin = excluded.last_origin,"
                    " field = excluded.field,"
                    # Bytes no source could read as a message (field ''), sent again through
                    # another source (one body posted to two vendors' webhooks), keep the
                    # reason of the origin the entry names and add the new source's, once
                    # (`replace` leaves the text as it was when that reason is not in it):
                    # each reader has its own, which starts with its name.
                    " reason = CASE WHEN quarantine.field <> '' OR excluded.field <> ''"
                    " THEN excluded.reason"
                    " WHEN excluded.reason = ''"
                    " OR replace(quarantine.reason, excluded.reason, '') <> quarantine.reason"
                    " THEN quarantine.reason"
                    " ELSE quarantine.reason || '; ' || excluded.reason END,"
                    " waits_for = excluded.waits_for, waits_tenant = excluded.waits_tenant,"
                    " names = excluded.names,"
                    # The same bytes sent by two tenants (over HTTP): either one's erasure
                    # may purge them.
                    " tenant = CASE WHEN quarantine.tenant = excluded.tenant"
                    " THEN excluded.tenant END",
                    [
                        (r.digest, r.raw, r.payload,
                         r.origin, r.origin, r.field, r.reason, now, now,
                         *_waits_columns(r.waits_for), names_column(r.names),
                         erased_with(r.payload if r.payload is not None else r.raw, r.names,
                                     r.origin))
                        for r in append.rejected
                    ],
                )
            if append.still_rejected:
                tx.executemany(
                    "UPDATE quarantine SET field = ?, reason = ?, last_seen = ?, waits_for = ?,"
                    " waits_tenant = ? WHERE id = ?",
                    [(field, reason, now, *_waits_columns(waits), qid)
                     for qid, field, reason, waits in append.still_rejected],
                )
            if append.resolved:
                tx.executemany("DELETE FROM quarantine WHERE id = ?",
                               [(qid,) for qid in append.resolved])
        return append

    def encrypt(self) -> int:
        """Seal the personal fields of every event stored unsealed (`mot upgrade --encrypt`):
        batches in order of position, each committed with the position it reached, so a
        stopped upgrade resumes where it stopped; new events are sealed once it is done.
        Returns how many events it sealed. Old bytes then leave the files (`scrub`)."""
        import orjson

        from mot.adapters.stores.sealing import is_sealed

        backend = self.backend
        position_column = backend.position_column
        select = (f"SELECT {position_column}, topic, state FROM stored_events"
                  f" WHERE {position_column} > ? ORDER BY {position_column} LIMIT {UPGRADE_BATCH}")
        update = f"UPDATE stored_events SET state = ? WHERE {position_column} = ?"
        with backend.read() as tx:
            saved = tx.query("SELECT position, done FROM mot_upgrades WHERE step = ?",
                             (SEALED_STEP,))
        if saved and saved[0][1]:
            return 0
        position = int(saved[0][0]) if saved else 0
        total, sealed = backend.head(), 0
        self.sealing.keystore.master()
        _say(f"encrypting the ledger's personal fields (from position {position:,} of {total:,})")
        while True:
            with backend.write("ledger") as tx:
                backend.erasing(tx)  # what the rewrite frees is zeroed (SQLite)
                rows = tx.query(select, (position,))
                if not rows:
                    tx.execute("UPDATE mot_upgrades SET done = 1, position = ? WHERE step = ?",
                               (position, SEALED_STEP))
                    break
                plain = [(int(at), str(topic), orjson.loads(bytes(state)))
                         for at, topic, state in rows]
                plain = [(at, topic, data) for at, topic, data in plain
                         if not is_sealed(topic, data)]
                states = self.sealing.seal_states(tx, [(t, d) for _, t, d in plain])
                tx.executemany(update, [(orjson.dumps(state), at)
                                        for (at, _, _), state in zip(plain, states, strict=True)])
                sealed += len(plain)
                position = int(rows[-1][0])
                tx.execute("UPDATE mot_upgrades SET position = ? WHERE step = ?",
                           (position, SEALED_STEP))
            _say(f"encrypting the ledger: {position:,} of {total:,}")
        self._sealed = True
        backend.scrub(["stored_events", "quarantine"])
        _say(f"encrypted the ledger: {sealed:,} events sealed; mot erase can be used now")
        return sealed

    def _sealed_rows(self, tx: Any, events: Sequence[LedgerEvent], stream_ids: Sequence[Any]
                     ) -> list[StoredRow]:
        """The events' rows with their personal fields sealed under their customers' keys
        (a link's customer ids too, each under its own customer's key: SPEC §6)."""
        return self.sealing.sealed_rows(tx, events, stream_ids)

    def _opened(self, tx: Any | None, rows: Sequence[tuple[int, str, Any]]) -> list[LedgerEvent]:
        """Stored (version, topic, state) rows decoded, their sealed fields opened."""
        from mot.adapters.stores.codec import from_data

        datas = self.sealing.open_states(tx, [(topic, bytes(state)) for _, topic, state in rows]) \
            if rows else []
        return [from_data(version, topic, data)
                for (version, topic, _), data in zip(rows, datas, strict=True)]

    def suppression_active(self) -> bool:
        with self.backend.read() as tx:  # inside `record`, its transaction
            # Any erasure: its moments' corrections are suppressed even once it is lifted.
            return bool(tx.query("SELECT 1 FROM mot_erased_keys LIMIT 1")
                        or tx.query("SELECT 1 FROM mot_suppressed LIMIT 1"))

    def suppressed(self, customers: Collection[tuple[str, str]]) -> set[tuple[str, str]]:
        keystore = self.sealing.keystore
        backend = self.backend
        with backend.read() as tx:
            keystore.master(tx)
            digests = {(tenant, keystore.digest(tenant, cid)): (tenant, cid)
                       for tenant, cid in customers}
            found: set[tuple[str, str]] = set()
            pairs = list(digests)
            for start in range(0, len(pairs), backend.max_params):
                part = [d for _, d in pairs[start:start + backend.max_params]]
                found |= {(str(t), str(d)) for t, d in tx.query(
                    f"SELECT tenant, digest FROM mot_suppressed WHERE digest"
                    f" {backend.in_list(len(part))}", backend.in_params(part))}
        return {digests[pair] for pair in found if pair in digests}

    @contextmanager
    def transaction(self, waiting: Callable[[], None] | None = None) -> Iterator[None]:
        with self.backend.write("ledger", waiting):
            yield

    def _candidates(self, tx: Any, keys: Collection[tuple[str | None, str]]) -> set[MomentKey]:
        """The moments these keys may name: a key without tenant, the id in every tenant."""
        named = {key for key in keys if key[0] is not None}
        if len(named) < len(keys):
            tenants = self._tenants(tx)
            named |= {(tenant, moment_id) for key_tenant, moment_id in keys
                      if key_tenant is None for tenant in tenants}
        return named  # type: ignore[return-value]  # (None was filtered out above)

    def _waiting(self, tx: Any, keys: Collection[tuple[str | None, str]],
                 streams: dict[MomentKey, Stream]) -> list[Quarantined]:
        """The corrections waiting for the moments `keys` names that are not recorded, oldest
        first; one indexed look when none waits (the common case)."""
        if not tx.query("SELECT 1 FROM quarantine WHERE waits_for IS NOT NULL LIMIT 1"):
            return []
        missing = {key for key in keys if key[0] is not None and key not in streams}
        ids = sorted({moment_id for _, moment_id in missing})
        found: list[Quarantined] = []
        for start in range(0, len(ids), self.backend.max_params):
            chunk = ids[start:start + self.backend.max_params]
            rows = tx.query(f"SELECT {QUARANTINE_COLUMNS} FROM quarantine"
                            f" WHERE waits_for IN ({','.join('?' * len(chunk))})", chunk)
            found += [q for q in map(_quarantined, rows)
                      if q.waits_for is not None and (q.waits_for[0] is None or q.waits_for in missing)]
        return sorted(found, key=lambda q: q.id)

    def _pairs(self, tx: Any, pairs: Collection[str]) -> dict[str, Pair]:
        """The recorded pairs among these link stream ids, by link stream id."""
        from mot.domain.ledger import replay_pair

        param = self.backend.stream_id_param
        events = self._events(tx, {link_id: param(link_id) for link_id in pairs})
        found = {link_id: replay_pair(pair_events) for link_id, pair_events in events.items()}
        return {link_id: pair for link_id, pair in found.items() if pair is not None}

    def _add_waiting(self, tx: Any) -> None:
        """Schema 9: the quarantine marks the corrections that wait for their moment. A store
        from before gains the columns, and each correction it holds whose moment is still
        not recorded is marked, so that it too applies when the moment comes."""
        from mot.adapters.stores.projection_tables import column_names

        have = column_names(tx, "quarantine")
        if all(name in have for name in WAITING_COLUMNS):
            tx.execute(WAITING_DDL)
            return
        for name in WAITING_COLUMNS:
            if name not in have:
                tx.execute(f"ALTER TABLE quarantine ADD COLUMN {name} TEXT")
        tx.execute(WAITING_DDL)
        self._mark_waiting(tx)

    def _mark_waiting(self, tx: Any) -> None:
        import orjson

        from mot.domain.identity import moment_stream_id

        rows = tx.query("SELECT id, raw, payload FROM quarantine WHERE field = 'moment_id'"
                        " AND reason LIKE 'no recorded moment %'")
        marks = []
        for qid, raw, payload in rows:
            try:
                data = orjson.loads(bytes(payload if payload is not None else raw))
                moment_id, tenant = str(UUID(data["moment_id"])), data.get("tenant")
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
                continue
            if not isinstance(tenant, str | None):
                continue
            tenants = [tenant] if tenant is not None else self._tenants(tx)
            ids = [self.backend.stream_id_param(moment_stream_id(t, moment_id)) for t in tenants]
            if ids and self.backend.select_streams(tx, ids):
                continue  # its moment came meanwhile: `mot quarantine replay` puts it in
            marks.append((moment_id, tenant, int(qid)))
        tx.executemany("UPDATE quarantine SET waits_for = ?, waits_tenant = ? WHERE id = ?", marks)

    def _tenants(self, tx: Any) -> list[str]:
        return [str(row[0]) for row in tx.query("SELECT tenant FROM ledger_tenants")]

    def _events(self, tx: Any, stream_ids: dict[Key, Any]) -> dict[Key, list[LedgerEvent]]:
        """The events of these streams (a key, such as (tenant, moment id) or a link stream id,
        -> its stream id as stored), in version order, by key; a stream that is not recorded
        is left out."""
        params = {stream_id: key for key, stream_id in stream_ids.items()}
        events: dict[Key, list[LedgerEvent]] = {}
        rows = self.backend.select_streams(tx, list(params))
        opened = self._opened(tx, [(version, topic, state) for _, version, topic, state in rows])
        for (stream_id, *_), event in zip(rows, opened, strict=True):
            events.setdefault(params[stream_id], []).append(event)
        return events

    def _streams(self, tx: Any, stream_ids: dict[MomentKey, Any]) -> dict[MomentKey, Stream]:
        from mot.domain.ledger import replay_stream

        streams: dict[MomentKey, Stream] = {}
        for key, stream_events in self._events(tx, stream_ids).items():
            stream = replay_stream(stream_events)
            if stream is not None:
                streams[key] = stream
        return streams

    def current_moments(self, tenant: str, moment_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The current content of these moments of `tenant` (after their amendments; a
        retracted or unknown moment is left out)."""
        from mot.domain.events import as_dict
        from mot.domain.identity import moment_stream_id

        stream_ids = {(tenant, moment_id): self.backend.stream_id_param(
            moment_stream_id(tenant, moment_id)) for moment_id in moment_ids}
        with self.backend.read() as tx:
            streams = self._streams(tx, stream_ids)
        return {moment_id: as_dict(stream.current) for (_, moment_id), stream in streams.items()
                if not stream.retracted}

    def stream(self, moment_id: str, tenant: str | None = None) -> list[LedgerEvent]:
        """The events of the moment `moment_id` of `tenant`; without a tenant, of the
        moment with that id in whichever tenant has one (AmbiguousMoment when several do)."""
        from mot.domain.identity import moment_stream_id

        backend = self.backend
        with backend.read() as tx:
            tenants = [tenant] if tenant is not None else self._tenants(tx)
            found = self._events(tx, {(t, moment_id): backend.stream_id_param(
                moment_stream_id(t, moment_id)) for t in tenants})
        if len(found) > 1:
            from mot.domain.ledger import AmbiguousMoment

            raise AmbiguousMoment(moment_id)
        return next(iter(found.values()), [])

    def link_events(self, tenant: str, pairs: Collection[tuple[str, str]]
                    ) -> dict[tuple[str, str], list[LinkEvent]]:
        """Each pair's link and unlink events in version order (`service.persons.PairHistory`)."""
        from mot.domain.events import CustomersLinked, CustomersUnlinked
        from mot.domain.links import link_stream_id

        backend = self.backend
        with backend.read() as tx:
            found = self._events(tx, {pair: backend.stream_id_param(link_stream_id(tenant, *pair))
                                      for pair in pairs})
        # Typed through Any: the notification log's type names links once the ledger records them.
        return {pair: [e for e in events if isinstance(e, CustomersLinked | CustomersUnlinked)]
                for pair, events in cast("dict[tuple[str, str], list[Any]]", found).items()}

    def link_events_upto(self, upto: int, part: tuple[int, int] = (0, 1)) -> list[LinkEvent]:
        """Every link and unlink at positions up to `upto`, by their topics (a rebuild's first
        read: few rows), their sealed ids opened."""
        from mot.adapters.stores.topics import LINKED, UNLINKED
        from mot.domain.events import CustomersLinked, CustomersUnlinked

        position = self.backend.position_column
        with self.backend.read() as tx:
            rows = [(int(v), str(t), s) for v, t, s in tx.query(
                f"SELECT originator_version, topic, state FROM stored_events"
                # The remainder by integer division: `%` is a placeholder's mark to psycopg.
                f" WHERE topic IN (?, ?) AND {position} <= ?"
                f" AND {position} - {position} / ? * ? = ? ORDER BY {position}",
                (LINKED, UNLINKED, upto, part[1], part[1], part[0]))]
            # Opened a part at a time: the keystore keeps the keys one call asks for, and
            # starts afresh only between calls (CACHED_KEYS), so the keys held at once stay
            # bounded however many ids are linked (a million moments' links: 62,000 keys).
            events: list[Any] = [e for part in range(0, len(rows), LINKS_OPENED)
                                 for e in self._opened(tx, rows[part:part + LINKS_OPENED])]
        return [e for e in events if isinstance(e, CustomersLinked | CustomersUnlinked)]

    def notifications(self, after: int, limit: int) -> list[tuple[int, LedgerEvent]]:
        notifications = self.backend.select_notifications(after, limit)
        events = self._opened(None, [(n.originator_version, n.topic, n.state)
                                     for n in notifications])
        return [(n.id, event) for n, event in zip(notifications, events, strict=True)]

    def _scope_streams_by_tenant(self) -> None:
        """Upgrade a ledger whose streams are named by the moment id alone: each event
        moves to the stream `moment_stream_id(tenant, moment_id)` (a retraction also
        gains the `moment_id` it no longer finds in its stream id), and `ledger_tenants`
        is filled. Batches in order of position, each committed with the position it
        reached, so a stopped upgrade resumes where it stopped; positions do not change,
        so the projections stay valid."""
        backend = self.backend
        with backend.write("schema") as tx:
            saved = tx.query("SELECT position, done FROM mot_upgrades WHERE step = ?",
                             (SCOPE_STEP,))
            if saved and saved[0][1]:
                return
            if not saved:
                # A new store has nothing to move; a store from before the step has no row.
                empty = tx.scalar("SELECT COUNT(*) FROM (SELECT 1 FROM stored_events LIMIT 1) AS s")
                tx.execute("INSERT INTO mot_upgrades (step, position, done) VALUES (?, 0, ?)",
                           (SCOPE_STEP, 1 if not empty else 0))
                if not empty:
                    return
            position = int(saved[0][0]) if saved else 0
        total = backend.head()
        position_column = backend.position_column
        select = (f"SELECT {position_column}, {backend.stream_id_text}, topic, state"
                  f" FROM stored_events WHERE {position_column} > ?"
                  f" ORDER BY {position_column} LIMIT {UPGRADE_BATCH}")
        update = (f"UPDATE stored_events SET originator_id = {backend.stream_id_value},"
                  f" state = ? WHERE {position_column} = ?")
        _say(f"upgrading the ledger: moment ids scoped by tenant (from position {position:,}"
             f" of {total:,})")
        while True:
            with backend.write("ledger") as tx:
                rows = tx.query(select, (position,))
                if not rows:
                    tx.execute("UPDATE mot_upgrades SET done = 1 WHERE step = ?", (SCOPE_STEP,))
                    break
                changes, tenants = [], set()
                for at, legacy_id, topic, state in rows:
                    scoped = _scoped(str(legacy_id), topic, bytes(state))
                    if scoped is not None:
                        stream_id, tenant, new_state = scoped
                        changes.append((backend.stream_id_param(stream_id), new_state, at))
                        tenants.add(tenant)
                tx.executemany(update, changes)
                tx.executemany("INSERT INTO ledger_tenants (tenant) VALUES (?)"
                               " ON CONFLICT (tenant) DO NOTHING", [(t,) for t in tenants])
                position = int(rows[-1][0])
                tx.execute("UPDATE mot_upgrades SET position = ? WHERE step = ?",
                           (position, SCOPE_STEP))
            if position // (UPGRADE_BATCH * 20) != (position - len(rows)) // (UPGRADE_BATCH * 20):
                _say(f"upgrading the ledger: {position:,} of {total:,}")
        _say("upgraded the ledger: moment ids scoped by tenant")

    def head(self) -> int:
        return self.backend.head()

    def tenants(self) -> list[str]:
        with self.backend.read() as tx:
            return sorted(self._tenants(tx))

    def count(self, upto: int) -> int:
        backend = self.backend
        with backend.read() as tx:
            return int(tx.scalar(f"SELECT COUNT(*) FROM stored_events"
                                 f" WHERE {backend.position_column} <= ?", (upto,)) or 0)

    def quarantine(
        self, *, limit: int | None = None, ids: Collection[int] | None = None,
        field: str | None = None, reason: str | None = None,
    ) -> list[Quarantined]:
        statement = f"SELECT {QUARANTINE_COLUMNS} FROM quarantine"
        conditions: list[str] = []
        params: list[Any] = []
        if ids is not None:
            wanted = sorted(ids)
            if not wanted:
                return []
            conditions.append(f"id IN ({','.join('?' * len(wanted))})")
            params.extend(wanted)
        if field is not None:
            # A message rejected for several fields keeps the first in `field`; the others
            # start a part of its reason ("channel: ...; kind: ...").
            conditions.append("(field = ? OR reason LIKE ? ESCAPE '!' OR reason LIKE ? ESCAPE '!')")
            pattern = _like_escaped(field) + ": %"
            params.extend([field, pattern, "%; " + pattern])
        if reason is not None:
            conditions.append("LOWER(reason) LIKE ? ESCAPE '!'")
            params.append("%" + _like_escaped(reason.lower()) + "%")
        if conditions:
            statement += " WHERE " + " AND ".join(conditions)
        statement += " ORDER BY id"
        if limit is not None:
            statement += " LIMIT ?"
            params.append(limit)
        with self.backend.read() as tx:
            rows = tx.query(statement, params)
        return [_quarantined(row) for row in rows]

    def quarantine_reasons(self) -> list[tuple[str, str, int, int]]:
        """(field, reason, messages, lowest id) for each distinct rejection in the quarantine."""
        with self.backend.read() as tx:
            rows = tx.query("SELECT field, reason, COUNT(*), MIN(id) FROM quarantine"
                            " GROUP BY field, reason ORDER BY MIN(id)")
        return [(str(f), str(r), int(n), int(first)) for f, r, n, first in rows]

    def quarantine_by_tenant(self) -> dict[str | None, int]:
        with self.backend.read() as tx:
            rows = tx.query("SELECT tenant, COUNT(*) FROM quarantine GROUP BY tenant")
        return {None if t is None else str(t): int(n) for t, n in rows}

    def quarantine_count(self) -> int:
        with self.backend.read() as tx:
            return int(tx.scalar("SELECT COUNT(*) FROM quarantine") or 0)

    def drop_quarantined(self, ids: Collection[int]) -> int:
        with self.backend.write("quarantine") as tx:
            before = int(tx.scalar("SELECT COUNT(*) FROM quarantine") or 0)
            tx.executemany("DELETE FROM quarantine WHERE id = ?", [(qid,) for qid in ids])
            return before - int(tx.scalar("SELECT COUNT(*) FROM quarantine") or 0)

    def set_quarantined_payload(self, quarantine_id: int, payload: bytes,
                                field: str | None = None, reason: str | None = None) -> int:
        """Keep `payload` (with why it is still rejected) as what entry `quarantine_id`
        replays. When another entry already holds that content, the two are one message:
        this one merges into it (repeats added up). Returns the id that holds it now."""
        from mot.domain.quarantine import erased_with

        digest = _digest(payload)
        now = format_utc(datetime.now(UTC))
        with self.backend.write("quarantine") as tx:
            rows = tx.query("SELECT id FROM quarantine WHERE digest = ? AND id <> ?",
                            (digest, quarantine_id))
            if not rows:
                # The tenant whose erasures may purge it is what the new payload says.
                names = tx.scalar("SELECT names FROM quarantine WHERE id = ?", (quarantine_id,))
                tx.execute("UPDATE quarantine SET payload = ?, digest = ?, field = COALESCE(?, field),"
                           " reason = COALESCE(?, reason), last_seen = ?, tenant = ? WHERE id = ?",
                           (payload, digest, field, reason, now,
                            erased_with(payload, names_of(names)), quarantine_id))
                return quarantine_id
            other = int(rows[0][0])
            repeats = tx.scalar("SELECT repeats FROM quarantine WHERE id = ?", (quarantine_id,))
            tx.execute("UPDATE quarantine SET repeats = repeats + ?, field = COALESCE(?, field),"
                       " reason = COALESCE(?, reason), last_seen = ? WHERE id = ?",
                       (int(repeats or 0), field, reason, now, other))
            tx.execute("DELETE FROM quarantine WHERE id = ?", (quarantine_id,))
            return other

    def close(self) -> None:
        self.backend.close()


def _create_sealing(tx: Any, backend: SqlBackend) -> None:
    """The keystore's and erasure's tables; a new store (no event yet) is sealed from the start."""
    from mot.adapters.stores.keystore import Keystore
    from mot.adapters.stores.sealing import Sealing

    Keystore.create_tables(tx, backend)
    Sealing.create_tables(tx, backend)
    empty = not tx.scalar("SELECT COUNT(*) FROM (SELECT 1 FROM stored_events LIMIT 1) AS s")
    tx.execute("INSERT INTO mot_upgrades (step, position, done) VALUES (?, 0, ?)"
               " ON CONFLICT (step) DO NOTHING", (SEALED_STEP, 1 if empty else 0))


def _like_escaped(text: str) -> str:
    """`text` matched literally by LIKE ... ESCAPE '!' (a field path may hold an underscore)."""
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def _scoped(legacy_id: str, topic: str, state: bytes) -> tuple[str, str, bytes] | None:
    """(stream id, tenant, state) of an event stored under its moment id alone."""
    import orjson

    from mot.adapters.stores.topics import AMENDED, RECORDED, RETRACTED
    from mot.domain.identity import moment_stream_id

    data = orjson.loads(state)
    if topic in (RECORDED, AMENDED):
        moment = data["moment"]
        return moment_stream_id(moment["tenant"], moment["moment_id"]), moment["tenant"], state
    if topic != RETRACTED:
        return None  # not a moment's event
    if "moment_id" not in data:
        data = {"moment_id": str(UUID(legacy_id)), **data}
        state = orjson.dumps(data)
    return moment_stream_id(data["tenant"], data["moment_id"]), data["tenant"], state


def _say(line: str) -> None:
    print(f"mot: {line}", file=sys.stderr, flush=True)


def _digest(data: bytes) -> str:
    import hashlib  # here, not at the top: loading OpenSSL is a tenth of a query's start-up

    return hashlib.sha256(data).hexdigest()


def _quarantined(row: Sequence[Any]) -> Quarantined:
    from mot.domain.quarantine import Quarantined

    (qid, raw, payload, origin, last_origin, field, reason, first, last, repeats,
     waits_for, waits_tenant, names) = row
    return Quarantined(
        int(qid), bytes(raw), None if payload is None else bytes(payload), origin, last_origin,
        field, reason, first, last, int(repeats),
        None if waits_for is None else (waits_tenant, str(waits_for)), names_of(names),
    )


def _add_names(tx: Any) -> None:
    """Schema 14: a store from before gains the quarantine's `names` (its entries name none:
    a vendor's record kept before is purged by the ids its bytes hold)."""
    from mot.adapters.stores.projection_tables import column_names

    if NAMES_COLUMN not in column_names(tx, "quarantine"):
        tx.execute(f"ALTER TABLE quarantine ADD COLUMN {NAMES_COLUMN} TEXT")


def _add_erased_with(tx: Any) -> None:
    """Schema 15: a store from before gains the quarantine's `tenant`, each entry it holds
    given the tenant whose erasures may purge it (`erased_with`), and its index."""
    from mot.adapters.stores.projection_tables import column_names
    from mot.domain.quarantine import erased_with

    if "tenant" not in column_names(tx, "quarantine"):
        tx.execute("ALTER TABLE quarantine ADD COLUMN tenant TEXT")
        after = 0
        while rows := tx.query("SELECT id, raw, payload, names, origin FROM quarantine"
                               " WHERE id > ? ORDER BY id LIMIT ?", (after, UPGRADE_BATCH)):
            tx.executemany("UPDATE quarantine SET tenant = ? WHERE id = ?", [
                (erased_with(bytes(raw if payload is None else payload), names_of(names),
                             origin), qid)
                for qid, raw, payload, names, origin in rows])
            after = rows[-1][0]
    tx.execute(ERASED_WITH_DDL)


def names_column(names: tuple[tuple[str, str], ...]) -> str | None:
    """The quarantine's `names` of a rejected message (NULL when its source gave none)."""
    import orjson

    return orjson.dumps(names).decode() if names else None


def names_of(column: str | None) -> tuple[tuple[str, str], ...]:
    """`names_column` read back."""
    import orjson

    return () if column is None else tuple((str(t), str(c)) for t, c in orjson.loads(column))


def _waits_columns(waits: tuple[str | None, str] | None) -> tuple[str | None, str | None]:
    """(waits_for, waits_tenant) of a rejected message."""
    return (None, None) if waits is None else (waits[1], waits[0])
