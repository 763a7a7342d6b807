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

from collections.abc import Callable, Sequence
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

# An erased person's rows keyed by a customer id (relationships, reciprocity, persons): a
# tombstone's key is that id, which the projection table `tombstones` must not keep (it is
# scrubbed of the person, and a rebuild replaces it). The erasure leaves those keys here,
# only for projections a publisher has published (`erasure_tombstones`); once every
# publisher of the projection has sent them they are deleted and the table scrubbed
# (`SqlChangelog.save_cursor`): until then they are the one place the store names her.
ERASURE_TOMBSTONES_DDL: Final = """CREATE TABLE IF NOT EXISTS mot_erasure_tombstones (
    projection TEXT NOT NULL, row_key TEXT NOT NULL, version {bigint} NOT NULL,
    erasure {bigint} NOT NULL, PRIMARY KEY (projection, row_key))"""
ERASURE_TOMBSTONES: Final = "mot_erasure_tombstones"

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
KEYED_BY_CUSTOMER: Final = tuple(name for name, keys in KEYS.items() if "customer_id" in keys)


def erasure_tombstones(backend: SqlBackend, tx: Tx, tenant: str, customer_ids: Sequence[str],
                       version: int, erasure: int) -> dict[str, list[str]]:
    """Inside an erasure's transaction, before the person's rows are deleted: keep the keys
    of their rows keyed by a customer id for the publishers (projection -> names of those
    publishers), in the projections some publisher has published."""
    if not backend.table_exists(tx, "publisher_state"):
        return {}
    # Made by the publisher too; one made by an older mot may lack it (`unnamed_cursors`
    # reads it after this).
    tx.execute(backend.ddl(ERASURE_TOMBSTONES_DDL))
    publishers: dict[str, list[str]] = {}
    for name, projection in tx.query("SELECT DISTINCT name, projection FROM publisher_state"):
        publishers.setdefault(str(projection), []).append(str(name))
    rows = []
    for projection in KEYED_BY_CUSTOMER:
        if projection not in publishers:
            continue
        keys = KEYS[projection]
        rows += [(projection, "/".join(str(v) for v in key), version, erasure)
                 for cid in customer_ids for key in tx.query(
                     f"SELECT {', '.join(keys)} FROM {projection} WHERE tenant = ?"
                     " AND customer_id = ?", (tenant, cid))]
    if not rows:
        return {}
    tx.executemany(f"INSERT INTO {ERASURE_TOMBSTONES} (projection, row_key, version, erasure)"
                   " VALUES (?, ?, ?, ?) ON CONFLICT (projection, row_key) DO UPDATE SET"
                   " version = excluded.version, erasure = excluded.erasure", rows)
    return {projection: sorted(publishers[projection]) for projection in {r[0] for r in rows}}


def unnamed_cursors(tx: Tx, names: Callable[[str, str, list[Any]], bool]) -> int:
    """Move each publisher cursor whose key `names` someone (projection, kind, key values)
    to the same place without it: the key before it in that version (its rows named by
    the cursor are gone by now), or the end of the version before. A cursor would
    otherwise keep an erased person's id; how many were moved."""
    moved = 0
    for name, projection, kind, version, row_key in tx.query(
            "SELECT name, projection, kind, position, row_key FROM publisher_state"):
        values = orjson.loads(row_key) if row_key else []
        if not values or not names(str(projection), str(kind), values):
            continue
        if kind == "tombstones":
            before = tx.query(
                "SELECT row_key FROM (SELECT row_key, version FROM tombstones WHERE projection = ?"
                f" UNION ALL SELECT row_key, version FROM {ERASURE_TOMBSTONES} WHERE projection = ?)"
                " t WHERE version = ? AND row_key < ? ORDER BY row_key DESC LIMIT 1",
                (projection, projection, version, values[0]))
        else:
            keys = ", ".join(KEYS[str(projection)])
            before = tx.query(
                f"SELECT {keys} FROM {projection} WHERE version = ? AND ({keys}) <"
                f" ({', '.join('?' * len(values))}) ORDER BY {keys} DESC LIMIT 1",
                (version, *values))
        cursor = (int(version), _key_text(list(before[0]))) if before else (int(version) - 1, "")
        tx.execute("UPDATE publisher_state SET position = ?, row_key = ? WHERE name = ?"
                   " AND projection = ? AND kind = ?", (*cursor, name, projection, kind))
        moved += 1
    return moved


class SqlChangelog:
    """Reads changed rows and tombstones, and keeps publishers' cursors, in one store."""

    def __init__(self, backend: SqlBackend) -> None:
        self.backend = backend
        with backend.write("publisher") as tx:
            tx.execute(backend.ddl(PUBLISHER_DDL))
            tx.execute(backend.ddl(ERASURE_TOMBSTONES_DDL))
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
            if kind == "tombstones" and tx.query(
                    f"SELECT 1 FROM {ERASURE_TOMBSTONES} WHERE projection = ? LIMIT 1",
                    (projection,)):
                # This may delete erasure tombstones, under the lock an erasure takes before
                # it moves the cursors that name its person: taken before the cursor's row,
                # as the erasure does (the other way round each waited for the other).
                self.backend.erasing(tx)
            tx.execute(
                "INSERT INTO publisher_state (name, projection, kind, position, row_key, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name, projection, kind) DO UPDATE SET"
                " position = excluded.position, row_key = excluded.row_key,"
                " updated_at = excluded.updated_at",
                (name, projection, kind, cursor[0], cursor[1], now),
            )
            sent = self._sent_erasure_tombstones(tx, projection) if kind == "tombstones" else []
            if sent:  # (`erasing` above: what is deleted is zeroed on SQLite)
                tx.executemany(f"DELETE FROM {ERASURE_TOMBSTONES} WHERE projection = ?"
                               " AND row_key = ?", [(projection, key) for key in sent])
                gone = set(sent)
                unnamed_cursors(tx, lambda p, k, values: p == projection and k == "tombstones"
                                and values[0] in gone)
        if sent:  # the erased ids out of the files (PostgreSQL: a rewrite of these small tables)
            self.backend.scrub([ERASURE_TOMBSTONES, "publisher_state"])

    def _sent_erasure_tombstones(self, tx: Tx, projection: str) -> list[str]:
        """The erasure tombstones of `projection` that every publisher of it has sent: each
        publisher's tombstone cursor is past them (one without one has sent none)."""
        cursors: dict[str, tuple[int, str]] = {}
        for name, kind, position, row_key in tx.query(
                "SELECT name, kind, position, row_key FROM publisher_state WHERE projection = ?",
                (projection,)):
            if kind == "tombstones":
                cursors[str(name)] = (int(position), str(row_key))
            else:
                cursors.setdefault(str(name), (0, ""))
        if not cursors:
            return []
        where, params = [], []
        for version, key in cursors.values():
            if key:  # (version, row_key) at or before the cursor, in the database's order
                where.append("(version < ? OR (version = ? AND row_key <= ?))")
                params += [version, version, orjson.loads(key)[0]]
            else:  # "after this version": all of it sent
                where.append("version <= ?")
                params.append(version)
        return [str(r[0]) for r in tx.query(
            f"SELECT row_key FROM {ERASURE_TOMBSTONES} WHERE projection = ? AND "
            + " AND ".join(where), (projection, *params))]

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
        # The projection's own tombstones, and those an erasure left (ERASURE_TOMBSTONES_DDL):
        # a page of each along its index, then the page of both. (One ordered union of the
        # two tables, PostgreSQL scanned and sorted the whole of `tombstones` for each page.)
        arm = ("SELECT row_key, version FROM (SELECT row_key, version FROM {table}"
               f" WHERE projection = ? AND {where} AND version <= ?"
               " ORDER BY version, row_key LIMIT ?) {alias}")
        with self.backend.read() as tx:
            rows = tx.query(
                f"SELECT row_key, version FROM ({arm.format(table='tombstones', alias='a')}"
                f" UNION ALL {arm.format(table=ERASURE_TOMBSTONES, alias='b')}) t"
                " ORDER BY version, row_key LIMIT ?",
                (projection, *params, upto, limit, projection, *params, upto, limit, limit),
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
