"""The `RowSorter` of `mot export --as-of` (service/export.py): an external sort of a
table's pages through a scratch SQLite file.

SQLite sorts in its temporary files, so memory holds a page, not the table. The file lies
in an owned folder (`scratch_folders.owned`): the rows hold personal fields, and a folder
an export killed with SIGKILL leaves is removed by the next erasure's sweep (SPEC 6).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from mot.adapters.stores import scratch_folders
from mot.service.export import PAGE_ROWS, Column


def sorted_pages(pages: Iterator[list[Any]], cols: Sequence[Column], order: Sequence[str]
                 ) -> Iterator[list[Any]]:
    """The rows of `pages` (one list of values per column of `cols`) sorted by the fields
    `order` names, text by its bytes (SQLite's default collation, as the live export's
    tables keep them), PAGE_ROWS rows a page."""
    names = [c.name for c in cols]
    booleans = [i for i, c in enumerate(cols) if c.kind == "boolean"]  # stored as 0 or 1
    fields = ", ".join(f"c{i}" for i in range(len(cols)))
    with scratch_folders.owned(scratch_folders.EXPORT_PREFIX) as scratch:
        db = sqlite3.connect(scratch / "sort.db", isolation_level=None)
        try:
            db.execute(f"CREATE TABLE rows ({fields})")
            db.execute("BEGIN")
            insert = f"INSERT INTO rows VALUES ({', '.join('?' * len(cols))})"
            for page in pages:
                db.executemany(insert, zip(*page, strict=True))
            db.execute("COMMIT")
            keys = ", ".join(f"c{names.index(name)}" for name in order)
            cursor = db.execute(f"SELECT {fields} FROM rows ORDER BY {keys}")
            while rows := cursor.fetchmany(PAGE_ROWS):
                page = [list(column) for column in zip(*rows, strict=True)]
                for i in booleans:
                    page[i] = [None if v is None else bool(v) for v in page[i]]
                yield page
        finally:
            db.close()
