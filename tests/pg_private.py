"""A private PostgreSQL cluster for tests that restart the server.

The shared server on 5432 is used by everyone's tests and is never restarted;
a test that needs a restart gets its own cluster: `initdb` into a temporary
folder owned by the `postgres` user (initdb refuses root), started with
`pg_ctl` on a free port with its socket in that folder, stopped and removed at
the end.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"no {name} under /usr/lib/postgresql/*/bin (install postgresql)")
    return found[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateCluster:
    """One PostgreSQL cluster of this test run: start, stop, restart, terminate backends."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mot-pg-", dir="/tmp"))
        self.data = self.dir / "data"
        self.port = _free_port()
        user = pwd.getpwnam("postgres")
        os.chown(self.dir, user.pw_uid, user.pw_gid)
        self._as_postgres(_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                          "--no-sync", "-E", "UTF8")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *args: str) -> None:
        done = subprocess.run(["runuser", "-u", "postgres", "--", *args], capture_output=True,
                              text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {done.stdout}{done.stderr}")

    def _ctl(self, *args: str) -> None:
        self._as_postgres(_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "server.log"),
                          "-w", "-t", "60", *args)

    def start(self) -> None:
        # fsync off: a test cluster, thrown away; the restart tests are about connections.
        self._ctl("-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off",
                  "start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "stop")

    def restart(self, down_s: float = 0.0) -> None:
        """Stop (every connection is dropped), stay down `down_s` seconds, start again."""
        self.stop()
        time.sleep(down_s)
        self.start()

    def terminate_backends(self) -> int:
        """pg_terminate_backend of every other client connection; how many there were."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'").fetchone()
        return int(row[0]) if row else 0

    def remove(self) -> None:
        with contextlib.suppress(RuntimeError):  # already down
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivateCluster]:
    cluster = PrivateCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()
