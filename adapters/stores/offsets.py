"""Where each consumer group's ingest has got to in each partition, kept in the ledger's store.

Implements `mot.service.streaming.OffsetStore`. The next offset of a partition is
saved in the same transaction as the moments read up to it, so the store knows
exactly which messages it holds: a batch delivered again (after a crash between
the ledger's commit and the broker's, or to another member after a rebalance)
is skipped message by message rather than recorded again. The ledger's own
check would call most of a repeat a duplicate, but not an earlier amendment
repeated after a later one (which is a new amendment, SPEC's A→B→A).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Final

from mot.adapters.stores.sql import SqlBackend
from mot.domain.timefmt import format_utc

OFFSETS_DDL: Final = """CREATE TABLE IF NOT EXISTS consumer_offsets (
    consumer_group TEXT NOT NULL, topic TEXT NOT NULL, partition_id INTEGER NOT NULL,
    next_offset {bigint} NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (consumer_group, topic, partition_id))"""


class SqlOffsets:
    """One consumer group's recorded offsets; read and saved inside the ledger's transaction."""

    def __init__(self, backend: SqlBackend, group: str) -> None:
        self.backend = backend
        self.group = group
        with backend.write("ledger") as tx:
            tx.execute(backend.ddl(OFFSETS_DDL))

    def recorded(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """(topic, partition) -> the next offset the store does not hold yet (absent: none held)."""
        wanted = set(partitions)
        with self.backend.read() as tx:
            rows = tx.query("SELECT topic, partition_id, next_offset FROM consumer_offsets"
                            " WHERE consumer_group = ?", (self.group,))
        return {(str(t), int(p)): int(o) for t, p, o in rows if (t, p) in wanted}

    def save(self, offsets: Mapping[tuple[str, int], int]) -> None:
        now = format_utc(datetime.now(UTC))
        with self.backend.write("ledger") as tx:
            tx.executemany(
                "INSERT INTO consumer_offsets (consumer_group, topic, partition_id, next_offset,"
                " updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (consumer_group, topic, partition_id)"
                " DO UPDATE SET next_offset = excluded.next_offset, updated_at = excluded.updated_at",
                [(self.group, topic, partition, offset, now)
                 for (topic, partition), offset in offsets.items()],
            )
