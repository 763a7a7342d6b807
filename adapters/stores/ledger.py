"""The ledger store on SQL: eventsourcing's stored events plus mot's quarantine table."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mot.adapters.stores.sql import SqlBackend
from mot.domain.timefmt import format_utc

if TYPE_CHECKING:
    # The events, their codec, the quarantine's records and the write path (pydantic
    # behind it) load only when a method needs them: `mot query`, which opens the ledger
    # only to see how far it goes, starts without them (start-up is most of its time).
    from mot.domain.events import LedgerEvent
    from mot.domain.ledger import Stream
    from mot.domain.quarantine import Quarantined
    from mot.service.ports import Append

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
    repeats INTEGER NOT NULL
)"""

# A rebuild asks of each event whether a later event of its moment exists. Only
# amendments and retractions are later events (about 1% of them): this index holds
# those alone, so the question is answered from a few cached pages rather than from
# random reads of the whole (originator_id, originator_version) index.
CORRECTIONS_DDL = ("CREATE INDEX IF NOT EXISTS stored_events_corrections"
                   " ON stored_events (originator_id, originator_version)"
                   " WHERE originator_version > 1")

QUARANTINE_COLUMNS = (
    "id, raw, payload, origin, last_origin, field, reason, first_seen, last_seen, repeats"
)


class SqlLedger:
    """Implements the LedgerStore port on a SqlBackend."""

    def __init__(self, backend: SqlBackend) -> None:
        self.backend = backend
        if not backend.ready:
            with backend.write("schema") as tx:
                tx.execute(backend.ddl(QUARANTINE_DDL))
                tx.execute(CORRECTIONS_DDL)

    def record(self, ids: Collection[str], plan: Callable[[dict[str, Stream]], Append]) -> Append:
        from mot.adapters.stores.codec import to_row

        backend = self.backend
        stream_ids = {moment_id: backend.stream_id_param(moment_id) for moment_id in ids}
        with backend.write("ledger") as tx:
            streams = self._streams(tx, stream_ids)
            append = plan(streams)
            backend.insert_stored_events(
                tx, [to_row(e, stream_ids[e.moment_id]) for e in append.events]
            )
            now = format_utc(datetime.now(UTC))
            if append.rejected:
                tx.executemany(
                    "INSERT INTO quarantine (digest, raw, payload, origin, last_origin, field,"
                    " reason, first_seen, last_seen, repeats) VALUES (?,?,?,?,?,?,?,?,?,1)"
                    " ON CONFLICT (digest) DO UPDATE SET repeats = quarantine.repeats + 1,"
                    " last_seen = excluded.last_seen, last_origin = excluded.last_origin,"
                    " field = excluded.field, reason = excluded.reason",
                    [
                        (_digest(r.payload if r.payload is not None else r.raw), r.raw, r.payload,
                         r.origin, r.origin, r.field, r.reason, now, now)
                        for r in append.rejected
                    ],
                )
            if append.still_rejected:
                tx.executemany(
                    "UPDATE quarantine SET field = ?, reason = ?, last_seen = ? WHERE id = ?",
                    [(field, reason, now, qid) for qid, field, reason in append.still_rejected],
                )
            if append.resolved:
                tx.executemany("DELETE FROM quarantine WHERE id = ?",
                               [(qid,) for qid in append.resolved])
        return append

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.backend.write("ledger"):
            yield

    def _streams(self, tx: Any, stream_ids: dict[str, Any]) -> dict[str, Stream]:
        """The recorded streams among these moments (moment id -> its id as stored)."""
        from mot.adapters.stores.codec import from_stored
        from mot.domain.ledger import replay_stream

        backend = self.backend
        params = {stream_id: moment_id for moment_id, stream_id in stream_ids.items()}
        events: dict[str, list[LedgerEvent]] = {}
        for stream_id, version, topic, state in backend.select_streams(tx, list(params)):
            moment_id = params[stream_id]
            events.setdefault(moment_id, []).append(
                from_stored(moment_id, version, topic, bytes(state))
            )
        streams: dict[str, Stream] = {}
        for moment_id, stream_events in events.items():
            stream = replay_stream(stream_events)
            if stream is not None:
                streams[moment_id] = stream
        return streams

    def current_moments(self, moment_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The current content of these moments (after their amendments; a retracted or
        unknown moment is left out)."""
        from mot.domain.events import as_dict

        stream_ids = {moment_id: self.backend.stream_id_param(moment_id) for moment_id in moment_ids}
        with self.backend.read() as tx:
            streams = self._streams(tx, stream_ids)
        return {moment_id: as_dict(stream.current) for moment_id, stream in streams.items()
                if not stream.retracted}

    def stream(self, moment_id: str) -> list[LedgerEvent]:
        from mot.adapters.stores.codec import from_stored

        recorded = self.backend.select_events(moment_id)
        return [
            from_stored(moment_id, s.originator_version, s.topic, bytes(s.state)) for s in recorded
        ]

    def notifications(self, after: int, limit: int) -> list[tuple[int, LedgerEvent]]:
        from mot.adapters.stores.codec import from_stored

        return [
            (n.id, from_stored(str(n.originator_id), n.originator_version, n.topic, bytes(n.state)))
            for n in self.backend.select_notifications(after, limit)
        ]

    def head(self) -> int:
        return self.backend.head()

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
        digest = _digest(payload)
        now = format_utc(datetime.now(UTC))
        with self.backend.write("quarantine") as tx:
            rows = tx.query("SELECT id FROM quarantine WHERE digest = ? AND id <> ?",
                            (digest, quarantine_id))
            if not rows:
                tx.execute("UPDATE quarantine SET payload = ?, digest = ?, field = COALESCE(?, field),"
                           " reason = COALESCE(?, reason), last_seen = ? WHERE id = ?",
                           (payload, digest, field, reason, now, quarantine_id))
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


def _like_escaped(text: str) -> str:
    """`text` matched literally by LIKE ... ESCAPE '!' (a field path may hold an underscore)."""
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def _digest(data: bytes) -> str:
    import hashlib  # here, not at the top: loading OpenSSL is a tenth of a query's start-up

    return hashlib.sha256(data).hexdigest()


def _quarantined(row: Sequence[Any]) -> Quarantined:
    from mot.domain.quarantine import Quarantined

    qid, raw, payload, origin, last_origin, field, reason, first, last, repeats = row
    return Quarantined(
        int(qid), bytes(raw), None if payload is None else bytes(payload), origin, last_origin,
        field, reason, first, last, int(repeats),
    )
