"""What the crash and worker tests look at from outside mot: processes, and a rebuild's stages.

Read straight from /proc (Linux) and from the store's files and catalog, with no
mot code in between, so a test sees what a user's `ps` or `ls` would.
"""

from __future__ import annotations

import glob
import time

from mot.bootstrap import open_store


def children(pid: int) -> set[int]:
    """The processes `pid` started that run now."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as listing:
            return {int(child) for child in listing.read().split()}
    except FileNotFoundError:
        return set()


def running(pid: int) -> bool:
    """Whether a process runs (a zombie, dead but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def still_running(pids: set[int], within: float = 10) -> list[int]:
    """Those of `pids` that still run after waiting up to `within` seconds for them to end."""
    deadline = time.monotonic() + within
    while any(running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return sorted(pid for pid in pids if running(pid))


def stages_left(url: str) -> list[str]:
    """The rebuild stages the store holds: files beside a SQLite store, tables on PostgreSQL."""
    with open_store(url) as services:
        backend = services.backend
        if backend.kind == "sqlite":
            return glob.glob(glob.escape(backend.path) + ".stage-*")  # type: ignore[attr-defined]
        with backend.read() as tx:
            return [str(row[0]) for row in tx.query(
                "SELECT tablename FROM pg_tables WHERE schemaname = ?"
                " AND starts_with(tablename, 'mot_stage_')",
                (backend.schema,),  # type: ignore[attr-defined]
            )]
