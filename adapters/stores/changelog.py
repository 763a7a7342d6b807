"""The projection changelog on SQL: changed rows in version order, and the publisher's cursor.

Implements `mot.service.streaming.ChangelogStore`. Every projection row
carries the ledger position of the page at which it last changed, and rows
deleted by the engine leave a `tombstones` row; so "what changed since
version V" is a range read on `version`. Within one version (a rebuild stamps
every row with the same one) rows are ordered by their key, and the cursor
(version, key) is kept in `publisher_state`, saved after each page is
written to the broker: a crash repeats at most one page.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

import orjson

from mot.adapters.stores.sql import SqlBackend, Tx
from mot.domain.timefmt import format_utc
from mot.projections.schema import PROJECTIONS, Projection, stored_decoder
from mot.service.streaming import CHANGELOG_PROJECTIONS, Change

PUBLISHER_DDL: Final = """CREATE TABLE IF NOT EXISTS publisher_state (
    name TEXT NOT NULL, projection TEXT NOT NULL, kind TEXT NOT NULL,
    position {bigint} NOT NULL, row_key TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (name, projection, kind))"""

# The projections published, by name. A record is what the projection's output shows of
# its stored fields (`lapsed` is computed when read); its key identifies the row.
PUBLISHED: Final[dict[str, Projection]] = {name: PROJECTIONS[name] for name in CHANGELOG_PROJECTIONS}
KEYS: Final[dict[str, tuple[str, ...]]] = {name: p.message_key or p.key
                                           for name, p in PUBLISHED.items()}

# Indexes that make "rows after (version, key)" one range scan. The projection tables
# are replaced by `mot replay`'s swap, so they are checked (and made again) on each round.
INDEXES: Final[dict[str, str]] = {
    f"{projection}_changelog": f"CREATE INDEX IF NOT EXISTS {projection}_changelog ON {projection}"
                               f" (version, {', '.join(keys)})"
    for projection, keys in KEYS.items()
} | {"tombstones_changelog": "CREATE INDEX IF NOT EXISTS tombstones_changelog ON tombstones"
                             " (projection, version, row_key)"}
INDEXED_TABLES: Final = (*KEYS, "tombstones")


class SqlChangelog:
    """Reads changed rows and tombstones, and keeps publishers' cursors, in one store."""

    def __init__(self, backend: SqlBackend) -> None:
        self.backend = backend
        with backend.write("publisher") as tx:
            tx.execute(backend.ddl(PUBLISHER_DDL))
        self._ensure_indexes()

    def _ensure_indexes(self) -> None:
        with self.backend.read() as tx:
            present = self._indexes(tx)
        missing = [ddl for name, ddl in INDEXES.items() if name not in present]
        if missing:
            with self.backend.write("projections") as tx:
                for ddl in missing:
                    tx.execute(ddl)

    def _indexes(self, tx: Tx) -> set[str]:
        return set(self.backend.index_names(tx, INDEXED_TABLES))

    def projected(self) -> int:
        self._ensure_indexes()
        with self.backend.read() as tx:
            position = tx.scalar("SELECT position FROM projection_state WHERE name = 'projections'")
        return int(position or 0)

    def cursor(self, name: str, projection: str, kind: str) -> tuple[int, str]:
        with self.backend.read() as tx:
            rows = tx.query("SELECT position, row_key FROM publisher_state"
                            " WHERE name = ? AND projection = ? AND kind = ?", (name, projection, kind))
        return (int(rows[0][0]), str(rows[0][1])) if rows else (0, "")

    def save_cursor(self, name: str, projection: str, kind: str, cursor: tuple[int, str]) -> None:
        now = format_utc(datetime.now(UTC))
        with self.backend.write("publisher") as tx:
            tx.execute(
                "INSERT INTO publisher_state (name, projection, kind, position, row_key, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name, projection, kind) DO UPDATE SET"
                " position = excluded.position, row_key = excluded.row_key,"
                " updated_at = excluded.updated_at",
                (name, projection, kind, cursor[0], cursor[1], now),
            )

    def reset(self, name: str) -> None:
        with self.backend.write("publisher") as tx:
            tx.execute("DELETE FROM publisher_state WHERE name = ?", (name,))

    def changes(self, projection: str, kind: str, after: tuple[int, str], upto: int,
                limit: int) -> list[Change]:
        if projection not in KEYS:
            raise ValueError(f"no changelog for {projection!r}; expected one of {', '.join(KEYS)}")
        version, key = after
        if kind == "tombstones":
            return self._tombstones(projection, version, key, upto, limit)
        return self._rows(projection, version, key, upto, limit)

    def _rows(self, projection: str, version: int, key: str, upto: int, limit: int) -> list[Change]:
        keys = KEYS[projection]
        fields = [f for f in PUBLISHED[projection].stored if f.shown != "stored"]
        select = [f.col for f in fields]
        names = [f.name for f in fields]
        where, params = _after(("version", *keys), version, key)
        statement = (f"SELECT {', '.join(select)} FROM {projection} WHERE {where} AND version <= ?"
                     f" ORDER BY version, {', '.join(keys)} LIMIT ?")
        with self.backend.read() as tx:
            rows = tx.query(statement, (*params, upto, limit))
        out: list[Change] = []
        decode = stored_decoder(fields)
        for row in rows:
            record = decode(dict(zip(names, row, strict=True)))
            key_values = [record[k] for k in keys]
            out.append(Change(projection, "/".join(str(v) for v in key_values), int(record["version"]),
                              record, (int(record["version"]), _key_text(key_values))))
        return out

    def _tombstones(self, projection: str, version: int, key: str, upto: int,
                    limit: int) -> list[Change]:
        where, params = _after(("version", "row_key"), version, key)
        with self.backend.read() as tx:
            rows = tx.query(
                f"SELECT row_key, version FROM tombstones WHERE projection = ? AND {where}"
                " AND version <= ? ORDER BY version, row_key LIMIT ?",
                (projection, *params, upto, limit),
            )
        return [Change(projection, str(row_key), int(v), None, (int(v), _key_text([row_key])))
                for row_key, v in rows]


def _key_text(values: list[Any]) -> str:
    return orjson.dumps(values).decode()


def _after(columns: tuple[str, ...], version: int, key: str) -> tuple[str, list[Any]]:
    """`(version, key...) > (cursor)` as SQL; a cursor without a key means "after this version"."""
    if not key:
        return "version > ?", [version]
    values = orjson.loads(key)
    return (f"({', '.join(columns)}) > ({', '.join('?' * len(columns))})", [version, *values])
