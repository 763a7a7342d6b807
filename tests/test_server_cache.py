"""mot serve's SQLite connections that append to the ledger keep a small page cache
(SQLiteBackend.serving), where a command's one appending connection keeps a large one: each
ingest thread has a connection whose cache another's commit empties, so the large cache
bought the server nothing but memory that grew with the store's hashed indexes."""

from __future__ import annotations

import threading
from pathlib import Path

from mot.adapters.stores.sqlite import LEDGER_CACHE_KIB, SERVER_LEDGER_CACHE_KIB
from mot.bootstrap import Services, open_store


def ledger_cache_kib(services: Services) -> int:
    """The page cache (KiB) of this thread's connection as it appends to the ledger."""
    with services.backend.write("ledger") as tx:
        return -int(tx.scalar("PRAGMA cache_size"))


def test_a_serving_process_appends_through_a_small_page_cache(tmp_path: Path) -> None:
    services = open_store(str(tmp_path / "served.db"))
    try:
        assert ledger_cache_kib(services) == LEDGER_CACHE_KIB == 65536  # a command's
        services.serving()  # what the HTTP app does first
        # this thread's connection, opened before, and an ingest thread's, opened after
        assert ledger_cache_kib(services) == SERVER_LEDGER_CACHE_KIB == 4096
        seen: list[int] = []
        thread = threading.Thread(target=lambda: seen.append(ledger_cache_kib(services)))
        thread.start()
        thread.join()
        assert seen == [4096]
    finally:
        services.close()
    # the next command on the same store appends with the large cache again
    again = open_store(str(tmp_path / "served.db"))
    try:
        assert ledger_cache_kib(again) == 65536
    finally:
        again.close()
