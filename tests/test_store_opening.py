"""Opening a store: read-only commands never create one, an unreachable server fails fast
with the driver's reason, a URL is never printed with its password, and the global
options are accepted after the subcommand too."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import process_support
import psycopg
import pytest
from click.testing import CliRunner, Result
from conftest import new_database

from mot.bootstrap import open_store, redacted
from mot.cli.main import cli
from mot.service.ports import StoreNotFound

READ_ONLY = [
    ["status"], ["status", "--format", "json"], ["quarantine", "list"], ["quarantine", "show", "1"],
    ["quarantine", "replay"], ["quarantine", "drop", "1"],
    ["query", "relationships"], ["query", "teams", "--no-refresh"],
    ["log", "--customer", "c1"], ["timeline", "acme", "c1"], ["story"],
    ["show", "zendesk:1"], ["project"], ["replay"], ["token", "list"],
]


def run(*args: Any, env: dict[str, str] | None = None, input: bytes | None = None) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], env=env, input=input)


def missing_store(result: Result, where: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == f"Error: no mot store at {where}; `mot import` creates one"


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_a_read_only_command_creates_no_sqlite_store(tmp_path: Path, args: list[str]) -> None:
    typo = tmp_path / "typo.db"
    missing_store(run("--store", typo, *args), str(typo))
    assert list(tmp_path.iterdir()) == []  # no file, no -wal, no lock file


def test_a_read_only_command_makes_no_folders(tmp_path: Path) -> None:
    store = tmp_path / "no" / "such" / "x.db"
    missing_store(run("--store", store, "status"), str(store))
    assert not (tmp_path / "no").exists()


def test_a_file_that_is_no_store_is_left_as_it_is(tmp_path: Path) -> None:
    import sqlite3

    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    conn.close()
    before = other.read_bytes()
    missing_store(run("--store", other, "status"), str(other))
    assert other.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.sqlite"]  # not switched to WAL

    wal = tmp_path / "wal.sqlite"  # a database in WAL mode, as mot's stores are
    with closing(sqlite3.connect(wal)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE notes (text TEXT)")
    missing_store(run("--store", wal, "query", "teams"), str(wal))
    with closing(sqlite3.connect(wal)) as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("notes",)]
    empty = tmp_path / "empty.db"
    empty.touch()
    missing_store(run("--store", empty, "quarantine", "list"), str(empty))
    assert empty.stat().st_size == 0


def test_writing_commands_create_the_store(tmp_path: Path) -> None:
    store = tmp_path / "new" / "mot.db"
    assert run("--store", store, "import", "-q", "-", input=b"").exit_code == 0
    assert store.is_file()
    status = run("--store", store, "status", "--format", "json")
    assert status.exit_code == 0, status.output
    assert '"ledger_head":0' in status.stdout
    tokens = tmp_path / "tokens.db"
    created = run("--store", tokens, "token", "create", "--tenant", "acme")
    assert created.exit_code == 0, created.output
    assert tokens.is_file()


def test_open_store_without_create_raises_store_not_found(tmp_path: Path) -> None:
    with pytest.raises(StoreNotFound) as raised:
        open_store(str(tmp_path / "x.db"), create=False)
    assert raised.value.where == str(tmp_path / "x.db")
    assert list(tmp_path.iterdir()) == []


# -- PostgreSQL ------------------------------------------------------------------------------


@pytest.fixture
def empty_database() -> Iterator[str]:
    """A new PostgreSQL database with nothing in it; dropped after the test."""
    with new_database("mot_empty") as url:
        yield url


def tables_and_schemas(url: str) -> tuple[list[str], list[str]]:
    with psycopg.connect(url) as conn:
        tables = conn.execute("SELECT table_schema || '.' || table_name FROM information_schema.tables"
                              " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
                              ).fetchall()
        schemas = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg_%'"
                               " AND nspname <> 'information_schema' ORDER BY 1").fetchall()
    return [t for (t,) in tables], [s for (s,) in schemas]


@pytest.mark.postgres
def test_read_only_commands_create_no_tables_in_an_empty_database(empty_database: str) -> None:
    before = tables_and_schemas(empty_database)
    assert before[0] == []
    with_password = empty_database.replace("postgres@", "postgres:s3cret@", 1)
    for args in (["status"], ["quarantine", "list"], ["query", "relationships"], ["story"]):
        missing_store(run("--store", with_password, *args), redacted(with_password))
    other_schema = f"{empty_database}?schema=nosuch"
    missing_store(run("--store", other_schema, "status"), other_schema)
    assert tables_and_schemas(empty_database) == before
    assert run("--store", other_schema, "import", "-q", "-", input=b"").exit_code == 0
    assert "nosuch" in tables_and_schemas(empty_database)[1]


def unreachable(url: str) -> tuple[float, str]:
    """How long `mot status` took against `url`, and what it said."""
    done, took = process_support.timed_mot(["--store", url, "status"],
                                           imports=("psycopg", "mot.bootstrap"), timeout=120,
                                           exits=1)
    assert done.stdout == ""
    return took, done.stderr.strip()


@pytest.mark.postgres
@pytest.mark.parametrize("url, reason", [
    ("postgresql://postgres:s3cret@127.0.0.1:1/test", "Connection refused"),
    ("postgresql://postgres:s3cret@127.0.0.1:5432/mot_no_such_db",
     'database "mot_no_such_db" does not exist'),
    ("postgresql://mot_no_such_role:s3cret@127.0.0.1:5432/test", 'role "mot_no_such_role" does not exist'),
], ids=["refused", "no-database", "no-role"])
def test_an_unreachable_store_fails_fast_with_the_drivers_reason(url: str, reason: str) -> None:
    elapsed, said = unreachable(url)
    # Well under the pool's 10 s timeout it used to wait out (twice); the command's own time
    # (the interpreter's start-up left out), which the test below holds to 2 s in-process.
    assert elapsed < 8.0
    assert said.startswith(f"Error: cannot reach the store {redacted(url)}: "), said
    assert reason in said
    assert "s3cret" not in said
    assert len(said.splitlines()) == 1


def test_the_driver_reason_comes_at_once_not_after_the_pool_timeout() -> None:
    """In-process, without the interpreter's start-up: under the 2 s asked for."""
    from mot.service.ports import StoreUnavailable

    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="Connection refused"):
        open_store("postgresql://postgres@127.0.0.1:1/test")
    assert time.monotonic() - started < 2.0


# -- passwords are never printed -------------------------------------------------------------


@pytest.mark.parametrize("url, shown", [
    ("postgresql://mot:s3cret@db.example:5432/mot?schema=a", "postgresql://mot@db.example:5432/mot?schema=a"),
    ("postgres://mot:p@ss:w@rd@db/mot", "postgres://mot@db/mot"),
    ("postgresql://:s3cret@db/mot", "postgresql://@db/mot"),
    ("postgresql://db/mot?password=s3cret&schema=b", "postgresql://db/mot?password=***&schema=b"),
    ("postgresql://mot@db/mot", "postgresql://mot@db/mot"),
    ("./mot.db", "./mot.db"),
    ("/tmp/a:b@c.db", "/tmp/a:b@c.db"),
])
def test_redacted_drops_the_password_only(url: str, shown: str) -> None:
    assert redacted(url) == shown


@pytest.mark.postgres
def test_the_serve_banner_shows_no_password(pg_schema_url: str) -> None:
    url = pg_schema_url.replace("postgres@", "postgres:s3cret@", 1)
    proc = subprocess.Popen([sys.executable, "-m", "mot", "--store", url, "serve", "--port", "0",
                             "--no-project", "--log-level", "critical"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        banner = proc.stderr.readline()
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert banner.startswith("mot API on http://127.0.0.1:"), banner
    assert f"store {redacted(url)}" in banner
    assert "s3cret" not in banner


def test_an_unsupported_url_is_refused_without_its_password() -> None:
    result = run("--store", "mysql://root:s3cret@db/mot", "status")
    assert result.exit_code == 1
    assert "mysql://root@db/mot" in result.stderr and "s3cret" not in result.stderr


# -- global options after the subcommand -------------------------------------------------------


def test_store_is_accepted_after_the_subcommand(tmp_path: Path, golden_path: Path) -> None:
    store = tmp_path / "mot.db"
    assert run("import", "-q", golden_path, "--store", store).exit_code == 0
    before = run("--store", store, "query", "relationships", "--format", "json")
    after = run("query", "relationships", "--store", store, "--format", "json")
    assert after.exit_code == 0, after.output
    assert after.stdout == before.stdout and '"acme"' in after.stdout
    nested = run("quarantine", "list", "--store", store, "--format", "json")
    assert nested.exit_code == 0 and nested.stdout.strip() == "[]"
    status = run("status", "--store", store, "--format", "json")
    assert '"ledger_head":' in status.stdout


def test_the_store_after_the_subcommand_wins(tmp_path: Path, golden_path: Path) -> None:
    store = tmp_path / "mot.db"
    assert run("--store", store, "import", "-q", golden_path).exit_code == 0
    missing = tmp_path / "other.db"
    missing_store(run("--store", store, "status", "--store", missing), str(missing))
    from_env = run("status", "--store", store, env={"MOT_STORE": str(missing)})
    assert from_env.exit_code == 0, from_env.output


def test_every_command_lists_store_in_its_help() -> None:
    from importlib import import_module

    import click

    from mot.cli.main import COMMAND_MODULES

    def leaves(command: click.Command, path: list[str]) -> Iterator[list[str]]:
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                yield from leaves(sub, [*path, name])
        else:
            yield path

    for name, module in COMMAND_MODULES.items():
        command = next(c for c in import_module(f"mot.cli.{module}").COMMANDS if c.name == name)
        for path in leaves(command, [name]):
            shown = run(*path, "--help")
            assert shown.exit_code == 0, path
            assert "--store URL" in shown.stdout, path


def test_a_store_path_that_is_a_directory_or_no_database_is_named_for_what_it_is(
        tmp_path: Path) -> None:
    """`--store /etc/passwd` (or a folder) said "no mot store at ...; `mot import` creates
    one", and the import then failed: "file is not a database". Said for what it is now,
    and left as it is."""
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n")
    refused = run("--store", text, "status")
    assert refused.exit_code == 1
    assert refused.stderr == (f"Error: {text} is not a mot store (not a SQLite database;"
                              " nothing was changed): --store names a mot store's file or a"
                              " postgresql:// URL\n")
    assert text.read_text() == "not a database\n"
    folder = tmp_path / "stores"
    folder.mkdir()
    refused = run("--store", folder, "query", "teams")
    assert refused.exit_code == 1
    assert refused.stderr == (f"Error: {folder} is a directory, not a mot store: --store names"
                              f" a store's file (say {folder / 'mot.db'}) or a postgresql://"
                              " URL\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "stores"]


def test_a_command_that_creates_the_store_names_a_directory_or_another_file_as_reading_does(
        tmp_path: Path) -> None:
    """`mot import` with --store a folder said "cannot open the store '/tmp': unable to open
    database file", with --store /etc/passwd "file is not a database", and left
    /etc/passwd.lock beside it. Said as `mot status` says it now, and nothing is made."""
    moments = tmp_path / "in.jsonl"
    moments.write_bytes(b"")
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n")
    refused = run("--store", text, "import", moments)
    assert refused.exit_code == 1
    assert refused.stderr == (f"Error: {text} is not a mot store (not a SQLite database;"
                              " nothing was changed): --store names a mot store's file or a"
                              " postgresql:// URL\n")
    folder = tmp_path / "stores"
    folder.mkdir()
    refused = run("--store", folder, "import", moments)
    assert refused.exit_code == 1
    assert refused.stderr == (f"Error: {folder} is a directory, not a mot store: --store names"
                              f" a store's file (say {folder / 'mot.db'}) or a postgresql://"
                              " URL\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "notes.txt", "stores"]
    assert list(folder.iterdir()) == []


def test_a_master_key_problem_is_one_line_of_its_own_not_a_store_error(tmp_path: Path) -> None:
    """'Error: store error: MOT_MASTER_KEY: expected ...': the key is no store's failure."""
    store = tmp_path / "mot.db"
    moments = tmp_path / "in.jsonl"
    moments.write_bytes(b'{"tenant": "acme", "customer_id": "c1", "occurred_at": '
                        b'"2026-06-01T09:30:00Z", "channel": "email", "direction": "inbound", '
                        b'"kind": "question", "source": {"system": "crm", "id": "1"}}\n')
    assert run("--store", store, "import", moments).exit_code == 0
    wrong = run("--store", store, "import", moments, env={"MOT_MASTER_KEY": "wrong"})
    assert wrong.exit_code == 1
    assert wrong.stderr == ("Error: MOT_MASTER_KEY: expected a master key of 32 bytes as 64 hex"
                            " digits or base64, got 5 characters that are neither\n")
    other = run("--store", store, "import", moments, env={"MOT_MASTER_KEY": "ab" * 32})
    assert other.stderr == (f"Error: the master key (from MOT_MASTER_KEY or {store}.key) is not the"
                            " one this store's keys were made with: set the right MOT_MASTER_KEY"
                            " or restore the right key file\n")
    (tmp_path / "mot.db.key").unlink()
    missing = run("--store", store, "import", moments, env={"MOT_MASTER_KEY": ""})
    assert missing.stderr == (f"Error: no master key: set MOT_MASTER_KEY or restore the key file"
                              f" {store}.key\n")
