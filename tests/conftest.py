"""Shared fixtures: fresh stores on SQLite and on the real PostgreSQL server, the golden files.

PostgreSQL: one throwaway database per test session (`mot_test_<random>`; under
pytest-xdist one per worker, `mot_test_gw0_<random>`), and in it one fresh schema per
test (`?schema=t_<random>`), so tests never see each other's rows and nothing is left
behind. The server is the local one
(`MOT_TEST_PG`, default `postgresql://postgres@127.0.0.1:5432`, trust auth).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from mot.bootstrap import Services, open_store

PG_SERVER = os.environ.get("MOT_TEST_PG", "postgresql://postgres@127.0.0.1:5432").rstrip("/")

# The repository is /work/main locally and a fresh clone in CI; shared/ sits beside it.
SHARED = Path(__file__).resolve().parents[2] / "shared"
GOLDEN = SHARED / "fixtures" / "golden.jsonl"
GOLDEN_EXPECTED = SHARED / "fixtures" / "golden.expected.json"


def _admin() -> psycopg.Connection[Any]:
    """An autocommit connection to a maintenance database of the test server."""
    last: Exception | None = None
    for dbname in ("postgres", "test"):
        try:
            return psycopg.connect(f"{PG_SERVER}/{dbname}", autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as error:
            last = error
    raise RuntimeError(f"cannot reach the PostgreSQL test server {PG_SERVER}: {last}")


@contextmanager
def new_database(prefix: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database on the test server; dropped at the end."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with _admin() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        # A commit need not wait for its WAL to reach the disk: only a crash of the server
        # itself could lose one, and the shared test server is never crashed (the restart
        # tests have their own cluster). Most of a test's store is DDL and small commits,
        # each of which otherwise waits for a WAL flush.
        admin.execute(sql.SQL("ALTER DATABASE {} SET synchronous_commit = off")
                      .format(sql.Identifier(name)))
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with _admin() as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture(autouse=True)
def _own_scratch_places(tmp_path_factory: pytest.TempPathFactory,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test notes its scratch folders' places in a list of its own (MOT_SCRATCH_PLACES,
    inherited by the mot processes it starts): with the account's list, an erasure in one
    test (or xdist worker) swept a killed export's folder another test was about to look at,
    and the account's list filled with pytest's folders."""
    monkeypatch.setenv("MOT_SCRATCH_PLACES",
                       str(tmp_path_factory.mktemp("places") / "scratch-places"))


# xdist workers start with COLUMNS and LINES in their environment when the controller's C
# environment has them (GNU readline sets both when it loads) though its os.environ does not;
# `mot query` fits its tables to $COLUMNS, so the workers take the controller's view.
TERMINAL_ENV = ("COLUMNS", "LINES")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    for name in TERMINAL_ENV:
        node.workerinput[f"env_{name}"] = os.environ.get(name)


def pytest_configure(config: pytest.Config) -> None:
    from mot import native

    # Python imports a compiled module before its .py: one edited since `make install` would
    # be tested as it was, silently.
    stale = native.stale()
    if stale:
        raise pytest.UsageError(
            f"compiled modules older than their sources: {', '.join(stale)}; "
            "run `make install` (it recompiles them) or remove their .so files")
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return
    for name in TERMINAL_ENV:
        value = workerinput.get(f"env_{name}")
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Under xdist the end-to-end tests marked slow (up to a minute each on a loaded machine)
    # start first on every worker and the short ones fill the workers' last minutes, instead
    # of a worker finishing long tests alone at the end. xdist's worksteal hands each worker
    # one contiguous share of the collection first (the same sizes as `shares` below), so each
    # share starts with its turn of the slow tests. Every worker orders alike (xdist checks).
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return
    workers = int(workerinput.get("workercount", 1))
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    rest = iter([item for item in items if item.get_closest_marker("slow") is None])
    ordered: list[pytest.Item] = []
    left = len(items)
    for worker in range(workers):
        share = left // (workers - worker)
        left -= share
        first = slow[worker::workers]
        ordered += first + [item for _, item in zip(range(share - len(first)), rest, strict=False)]
    ordered += list(rest)  # none unless the slow tests outnumber a share
    items[:] = ordered


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session; dropped at the end."""
    # Each xdist worker is a session of its own: its database says which worker made it.
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    with new_database(f"mot_test_{worker}" if worker else "mot_test") as url:
        yield url


def _drop_schema(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND state = 'idle in transaction'"
        )
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def pg_schema_url(pg_url: str) -> Iterator[str]:
    """A store URL naming a fresh schema of the session database; dropped after the test."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield f"{pg_url}?schema={schema}"
    _drop_schema(pg_url, schema)


@pytest.fixture
def make_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A factory of fresh store URLs of a kind (`sqlite` or `postgres`), for tests that need two."""
    schemas: list[str] = []
    counter = iter(range(1_000_000))

    def make(kind: str) -> str:
        if kind == "sqlite":
            return str(tmp_path / f"mot-{next(counter)}.db")
        pg_url = request.getfixturevalue("pg_url")
        schema = f"t_{uuid.uuid4().hex[:12]}"
        schemas.append(schema)
        return f"{pg_url}?schema={schema}"

    yield make
    if schemas:
        pg_url = request.getfixturevalue("pg_url")
        for schema in schemas:
            _drop_schema(pg_url, schema)


STORE_KINDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]
BACKENDS = [pytest.param("memory", id="memory"), *STORE_KINDS]
"""What a port's contract suite runs on: the in-memory adapters and both databases."""

RECORD_KEYS: dict[str, tuple[str, ...]] = {
    "moments": ("moment_id",),
    "relationships": ("tenant", "customer_id"),
    "reciprocity": ("tenant", "customer_id"),
    "transitions": ("tenant", "customer_id", "occurred_at", "moment_id"),
    "amplifications": ("amplification_id",),
    "teams": ("tenant", "function"),
    "listening": ("tenant",),
    "responses": ("tenant", "request_moment_id"),
    "persons": ("tenant", "customer_id"),
}
"""The fields that tell a table's records apart in an output (a query, an export, the golden
fixture's expected records), to compare them whatever order they come in."""


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    """Which store a parametrised test runs against."""
    return str(request.param)


@pytest.fixture
def store_url(store_kind: str, make_store_url: Any) -> str:
    """A fresh, empty store: a SQLite file in tmp_path, or a fresh PostgreSQL schema."""
    return str(make_store_url(store_kind))


@pytest.fixture
def services(store_url: str) -> Iterator[Services]:
    """The services of a fresh store (`store_url`), closed after the test."""
    opened = open_store(store_url)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture(scope="session")
def golden_path() -> Path:
    assert GOLDEN.is_file(), f"golden fixture missing: {GOLDEN}"
    return GOLDEN


@pytest.fixture(scope="session")
def golden_expected() -> dict[str, list[dict[str, Any]]]:
    return dict(json.loads(GOLDEN_EXPECTED.read_text(encoding="utf-8")))
