"""What the projection tests share: every projection table's rows, to compare two runs."""

from __future__ import annotations

from typing import Any

from mot.adapters.stores.projection_tables import TABLES, column_names
from mot.bootstrap import Services


def projection_tables(services: Services) -> dict[str, list[tuple[Any, ...]]]:
    """Every projection table's rows without versions, sorted; not the tombstones, which a
    rebuild (publishing every row anew) does not keep."""
    out = {}
    with services.backend.read() as tx:
        for name in (name for name in TABLES if name != "tombstones"):
            columns = [c for c in column_names(tx, name) if c != "version"]
            out[name] = sorted(tx.query(f"SELECT {', '.join(columns)} FROM {name}"), key=repr)
    return out
