"""`mot kafka ingest`'s memory does not grow with the ledger when several ingests share a
SQLite store (Services.ingesting, which the command calls before it joins its group)."""

from __future__ import annotations

from pathlib import Path

import orjson

from mot.adapters.stores.sqlite import LEDGER_CACHE_KIB, SHARED_LEDGER_CACHE_KIB
from mot.bootstrap import Services, open_store
from mot.service.ledger import Incoming


def moment(i: int) -> bytes:
    return orjson.dumps({"tenant": "acme", "customer_id": f"c{i}", "channel": "email",
                         "direction": "outbound", "kind": "question",
                         "occurred_at": "2026-03-01T09:00:00Z",
                         "source": {"system": "crm", "id": f"m-{i}"}})


def recorded(services: Services, i: int) -> bool:
    result = services.ledger.record([Incoming(moment(i), f"t/0/{i}")])
    return [v.outcome.value for v in result.verdicts] == ["recorded"]


def ledger_cache_kib(services: Services) -> int:
    """The page cache (KiB) of this thread's appending connection, as its next append has it."""
    with services.backend.write("ledger") as tx:
        return -int(tx.scalar("PRAGMA cache_size"))


def test_an_ingest_keeps_a_smaller_page_cache_once_another_writer_commits(tmp_path: Path) -> None:
    """Each commit of another writer empties a connection's page cache, which then held at most
    what one transaction of its own read: more, the larger the ledger's index. A pair of ingests
    into one SQLite file grew 1M/100k x1.54 by it (bench/scaling_notes.toml)."""
    url = str(tmp_path / "store.db")
    with open_store(url) as ingest, open_store(url) as other:
        ingest.ingesting()
        assert recorded(ingest, 1)
        assert ledger_cache_kib(ingest) == LEDGER_CACHE_KIB  # alone: its own commits
        assert recorded(other, 2)
        assert ledger_cache_kib(ingest) == SHARED_LEDGER_CACHE_KIB
        assert recorded(ingest, 3)
        assert ledger_cache_kib(ingest) == SHARED_LEDGER_CACHE_KIB
        # A command that is not an ingest (mot import) keeps the large cache beside others.
        assert ledger_cache_kib(other) == LEDGER_CACHE_KIB


def test_an_ingest_keeps_as_many_customers_keys_as_an_import(tmp_path: Path) -> None:
    """Not mot serve's fewer (Keystore.serving): a stream meets its customers in no order, and
    at 1,000,000 sample moments (83,331 customers) most moments missed a bound of 16,000 and
    read their key again; mot kafka ingest fell from 0.93 of mot import at 100,000 to 0.76 at
    1,000,000 with it (bench/NOTES.md)."""
    with open_store(str(tmp_path / "store.db")) as services:
        keystore = services.ledger_store.sealing.keystore
        services.ingesting()
        assert not keystore._serving
