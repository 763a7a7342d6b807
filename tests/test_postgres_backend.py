"""What the PostgreSQL store takes from eventsourcing's recorder, held to it.

mot appends stored events itself (COPY) and so must take the recorder's table lock
(notification ids commit in order) and send its NOTIFY (subscribers hear of the
append). It uses the recorder's public `lock_table_statements` and `channel_name`
(adapters/stores/postgres.py: `lock_ledger`, `notify_ledger`); if eventsourcing changes
either, these tests fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import orjson
import psycopg
import pytest

from mot.adapters.stores.postgres import SPLIT_PARTS
from mot.bootstrap import Services, open_store
from mot.domain.vocabulary import AMPLIFYING_KINDS
from mot.service.ledger import Incoming

pytestmark = pytest.mark.postgres

MOMENT = {"moment_id": "6f1c9e2a-3b4d-4c5e-8f70-123456789abc", "tenant": "acme",
          "customer_id": "c1", "occurred_at": "2026-03-01T09:00:00Z", "channel": "email",
          "direction": "outbound", "kind": "answer", "function": "service", "actor": "dana"}


@pytest.fixture
def services(pg_schema_url: str) -> Iterator[Services]:
    with open_store(pg_schema_url) as opened:
        yield opened


def server_url(store_url: str) -> str:
    return store_url.split("?", 1)[0]


def test_the_recorder_still_exposes_what_mot_uses(services: Services, pg_schema_url: str) -> None:
    from psycopg.sql import Composable

    recorder = services.backend.recorder
    statements = recorder.lock_table_statements
    assert statements and all(isinstance(s, Composable) for s in statements)
    with psycopg.connect(server_url(pg_schema_url)) as conn:
        text = [s.as_string(conn) for s in statements]
    schema = parse_qs(urlparse(pg_schema_url).query)["schema"][0]
    assert f'LOCK TABLE "{schema}"."stored_events" IN EXCLUSIVE MODE' in text
    assert recorder.channel_name == "stored_events"


def test_a_ledger_write_holds_the_exclusive_table_lock_and_notifies(
    services: Services, pg_schema_url: str
) -> None:
    schema = parse_qs(urlparse(pg_schema_url).query)["schema"][0]
    with psycopg.connect(server_url(pg_schema_url), autocommit=True) as listener, \
            psycopg.connect(server_url(pg_schema_url), autocommit=True) as probe:
        listener.execute('LISTEN "stored_events"')
        with services.ledger_store.transaction():
            services.ledger.record([Incoming(orjson.dumps(MOMENT), "test:1")])
            held = probe.execute(
                "SELECT l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = %s AND c.relname = 'stored_events' AND l.granted"
                " AND l.pid <> pg_backend_pid()", (schema,)).fetchall()
            assert ("ExclusiveLock",) in held
            assert list(listener.notifies(timeout=0.2, stop_after=1)) == []  # not before commit
        heard = list(listener.notifies(timeout=10, stop_after=1))
    assert [n.channel for n in heard] == ["stored_events"]
    assert services.ledger_store.head() == 1


def test_a_list_of_text_or_bytes_goes_as_one_array_literal_and_reads_back_the_same(
    services: Services,
) -> None:
    """PostgresBackend's `in_params` and `rows_params` send a list of str (or of bytes) as one
    array literal: what the server reads from it is the list, whatever the text holds (quotes,
    backslashes, braces, commas, the word NULL, nothing at all)."""
    from mot.adapters.stores.postgres import array_literal

    texts = ["plain", 'a "quoted" word', "back\\slash", "NULL", "null", "", " spaced ",
             "{braces}", "a,b", "\\\"", "'", "é ✓"]
    blobs = [b"", b"\x00\xff\\\"", bytes(range(256))]
    backend = services.backend
    with backend.read() as tx:
        assert tx.query("SELECT ?::text[], ?::bytea[]",
                        (array_literal(texts), array_literal(blobs)))[0] == (texts, blobs)
        assert tx.query("SELECT * FROM " + backend.rows_source(("text", "bytea"), 3),
                        backend.rows_params(list(zip(texts, blobs, strict=False)))) \
            == list(zip(texts, blobs, strict=False))
        assert tx.query(f"SELECT t FROM unnest(?::text[]) AS t WHERE t {backend.in_list(2)}",
                        (array_literal(texts), *backend.in_params(["NULL", "a,b"]))) \
            == [("NULL",), ("a,b",)]
    assert array_literal([1, 2]) == [1, 2] and array_literal([]) == []


def test_lookups_by_moment_id_read_the_indexes_of_a_split_moments_table(pg_schema_url: str,
                                                                        tmp_path: Any) -> None:
    """A catch-up looks current moments up by moment id, by the moment they reply to and by
    the post they share. On moments split by person each id may lie in any part, so the
    planner expected every id in every part and read whole parts: at 1,000,000 moments one
    lookup of ~2,000 replied-to ids was a sequential scan of all sixteen parts (1.7 s). They
    read the parts' indexes, and find the same moments."""
    from cli_support import mot

    from mot.adapters.sources.sample import generate_lines

    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(line + b"\n" for line in generate_lines(300, seed=3,
                                                                        corrections=False)))
    mot(pg_schema_url, "import", "-q", source, env={"MOT_PG_SPLIT_MOMENTS": "1"})
    mot(pg_schema_url, "project", env={"MOT_PG_SPLIT_MOMENTS": "1"})
    schema = parse_qs(urlparse(pg_schema_url).query)["schema"][0]
    with open_store(pg_schema_url) as opened, opened.projection_store.reader() as session:
        rows = session.tx.query("SELECT tenant, moment_id, in_reply_to, kind, direction"
                                " FROM moments")
        keys = {(str(r[0]), str(r[1])) for r in rows}
        counted = ("SELECT COALESCE(SUM(seq_scan), 0) FROM pg_stat_xact_user_tables"
                   " WHERE schemaname = ? AND relname LIKE 'moments_p%%'")
        before = session.tx.scalar(counted, (schema,))  # the read of every row above
        found = session.moments_by_key(keys)
        replies = session.amplifications_replying_to(keys)
        shares = session.children(keys)
        scanned = session.tx.scalar(counted, (schema,)) - before
        after = session.tx.scalar("SELECT current_setting('enable_seqscan')")
    assert len(rows) > 250 and set(found) == keys
    assert sorted(m.moment_id for m in replies) == sorted(
        str(r[1]) for r in rows if r[2] is not None and (str(r[0]), str(r[2])) in keys
        and r[3] in AMPLIFYING_KINDS and r[4] == "public")
    assert len(replies) > 0 and all(m.kind in AMPLIFYING_KINDS for m in replies)
    assert len(shares) > 0 and all(m.kind == "share" for m in shares)
    assert scanned == 0
    assert after == "on"  # the statements after a lookup are planned as before


@pytest.mark.parametrize("split", ["0", "1"])
def test_a_replay_analyzes_each_projection_table_once(pg_schema_url: str, tmp_path: Any,
                                                      split: str) -> None:
    """A rebuild gathers the planner's statistics of each table once: the current moments
    and person groups when indexed (the fold reads them), the rest at the swap. The swap's
    rename keeps a table's statistics on PostgreSQL, so the moments are not sampled again
    (3.4 s of the server's CPU at 1,000,000 moments split in 16 parts, 0.46 s whole)."""
    from cli_support import mot

    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(orjson.dumps(MOMENT | {"moment_id": None, "customer_id": f"c{i}",
                                                       "occurred_at": f"2026-03-01T09:{i:02d}:00Z"}
                                             ) + b"\n" for i in range(20)).replace(
        b'"moment_id":null,', b""))
    mot(pg_schema_url, "import", "-q", source, env={"MOT_PG_SPLIT_MOMENTS": split})
    mot(pg_schema_url, "replay", env={"MOT_PG_SPLIT_MOMENTS": split})
    schema = parse_qs(urlparse(pg_schema_url).query)["schema"][0]
    with psycopg.connect(server_url(pg_schema_url)) as conn:
        counts = dict(conn.execute(
            "SELECT relname, analyze_count FROM pg_stat_user_tables WHERE schemaname = %s"
            " AND relname IN ('moments', 'members', 'relationships', 'responses')"
            " OR relid IN (SELECT inhrelid FROM pg_inherits i JOIN pg_class p"
            " ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace"
            " WHERE n.nspname = %s AND p.relname = 'moments')", (schema, schema)).fetchall())
        # A split table and each of its parts are sampled at a tenth of the default target
        # (a whole table at the default).
        targets = dict(conn.execute(
            "SELECT c.relname, array_agg(DISTINCT a.attstattarget) FROM pg_attribute a"
            " JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relname LIKE 'moments%%' AND c.relkind IN ('r', 'p')"
            " AND a.attnum > 0 AND NOT a.attisdropped GROUP BY c.relname", (schema,)).fetchall())
    parts = [name for name in counts if name.startswith("moments_p")]
    assert len(parts) == (SPLIT_PARTS if split == "1" else 0)
    assert set(counts.values()) == {1}, counts
    assert targets == {"moments": [10 if split == "1" else -1], **{part: [10] for part in parts}}


def test_an_analysts_query_costs_five_round_trips_to_the_server(
        pg_schema_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """`mot query relationships --customer X` (and GET /v1/relationships?customer=X) asks the
    person's groups and then her rows. It cost 13 round trips to the server: two transactions,
    each with a pooled connection's check, BEGIN, SET LOCAL search_path, a catalog look-up of
    the table and COMMIT. Now one read transaction, the path set once a connection and the
    tables looked up until found: the check, BEGIN, the person's links and row (one
    statement), her rows, COMMIT. Counted in libpq's trace of every connection the store
    opens (a simple query or an extended query's Sync is one round trip); tenant given or
    not, and the same answers as before."""
    from cli_support import mot

    from mot.service.queries import Query

    source = tmp_path / "in.jsonl"
    moments = [dict(MOMENT, moment_id=f"6f1c9e2a-3b4d-4c5e-8f70-12345678900{i}", customer_id=c,
                    occurred_at=f"2026-03-0{i + 1}T09:00:00Z")
               for i, c in enumerate(["c1", "c2", "c3"])]
    source.write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in moments))
    mot(pg_schema_url, "import", "-q", source)
    mot(pg_schema_url, "project")
    traces: list[tuple[Any, Any]] = []  # (connection, its trace file)
    connect = psycopg.Connection.connect.__func__  # type: ignore[attr-defined]

    def trace(conn: Any, file: Any) -> None:
        # libpq writes through a buffered stream of its own (a descriptor of its own too):
        # `flush` ends it, which writes out what it holds, and begins another.
        conn.pgconn.trace(os.dup(file.fileno()))
        conn.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)

    def traced(cls: Any, *args: Any, **kwargs: Any) -> Any:
        conn = connect(cls, *args, **kwargs)
        # The pool makes connections in threads of its own, several at once: a name of this
        # connection's alone (two opened one file, "w" truncating, and overwrote each other).
        file = (tmp_path / f"trace-{id(conn)}").open("w")
        trace(conn, file)
        traces.append((conn, file))
        return conn

    def flush() -> dict[str, int]:
        for conn, file in list(traces):
            if not conn.closed:
                conn.pgconn.untrace()
                trace(conn, file)
        return {file.name: os.path.getsize(file.name) for _, file in traces}

    monkeypatch.setattr(psycopg.Connection, "connect", classmethod(traced))

    def round_trips(ask: Any) -> tuple[int, Any]:
        before = flush()
        answer = ask()
        flush()
        sent = 0
        for _, file in traces:
            with open(file.name) as read:
                read.seek(before.get(file.name, 0))
                sent += sum(line.split("\t")[2] in ("Query", "Sync")
                            for line in read.read().splitlines()
                            if line.startswith("F\t") and line.count("\t") >= 2)
        return sent, answer

    with open_store(pg_schema_url) as opened:
        run = opened.queries.run
        for _ in range(4):  # the pool's connections made, each with its path set once
            run(Query("relationships", customer="c1"))
        trips, answer = round_trips(lambda: run(Query("relationships", customer="c1")))
        assert trips == 5
        assert [(r["tenant"], r["customer_id"], r["brand_moments"]) for r in answer] == [
            ("acme", "c1", 1)]
        trips, answer = round_trips(lambda: run(Query("relationships", tenant="acme",
                                                       customer="c2")))
        assert trips == 5 and [r["customer_id"] for r in answer] == ["c2"]
        trips, answer = round_trips(lambda: run(Query("relationships", tenant="globex",
                                                       customer="c2")))
        assert trips == 4 and answer == []  # no person of that id there: no rows asked
        trips, answer = round_trips(lambda: run(Query("relationships")))
        assert trips == 4 and [r["customer_id"] for r in answer] == ["c3", "c2", "c1"]
        # `mot identity show` (GET /v1/persons/...): its person, row, pairs, moments and the
        # ledger's link events in one transaction too, where it took four (22 round trips).
        trips, shown = round_trips(lambda: opened.persons.show("acme", "c2"))
        assert (shown or {}).get("moments") == {"c2": 1}
        assert trips == 13
    for _, file in traces:
        file.close()
