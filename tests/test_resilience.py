"""Long-running services outlive PostgreSQL: a restart, or their backends terminated.

`mot project --follow`, `mot kafka ingest`, `mot kafka publish --follow`,
`mot serve` and `mot alerts deliver --follow` run against a PRIVATE cluster
(tests/pg_private.py: the shared server on 5432 is never restarted). The server
is stopped for a few seconds while each works (and, for ingest, while messages
wait on the topic), then started again; each command says once that the store is unreachable and once
that it answers again, keeps running, and ends with exactly what a clean run
gives: nothing lost, nothing doubled. A one-shot command against a stopped
server fails at once with one line.
"""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from kafka_support import (
    MOT,
    Broker,
    broker,
    create_topic,
    free_port,
    ingest_args,
    ledger_events,
    produce,
    read_topic,
    wait_until,
)
from pg_private import PrivateCluster, private_pg
from process_support import run, timed_mot

from mot.adapters.sources.sample import generate_lines
from mot.bootstrap import open_store
from mot.service.queries import Query

pytestmark = [pytest.mark.postgres, pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]
__all__ = ["broker", "private_pg"]  # fixtures

UNREACHABLE = "the store is unreachable"
BACK = "the store answers again"


def database(cluster: PrivateCluster) -> str:
    name = f"r_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return cluster.url.rsplit("/", 1)[0] + f"/{name}"


def sample(n: int, seed: int, **options: Any) -> list[bytes]:
    return [line.rstrip(b"\n") for line in generate_lines(n, seed=seed, bad_lines=False, **options)]


def mot(store: str, *args: str, stdin: bytes | None = None, check: bool = True) -> str:
    done = run([str(MOT), "--store", store, *args], input=stdin, timeout=300,
               exits=0 if check else None)
    return str(done.stdout.decode())


def start(store: str, log: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([str(MOT), "--store", store, *args], stdout=subprocess.PIPE,
                            stderr=open(log, "wb"))


def finish(process: subprocess.Popen[bytes], log: Path, exits: tuple[int, ...] = (0,)) -> str:
    assert process.poll() is None, f"the service died: {log.read_text()}"
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    assert process.returncode in exits, log.read_text()
    return log.read_text()


# The waits below ask these in-process, a look every 0.2 s: each `mot status` or `mot query`
# process was an interpreter's start-up and mot's imports, CPU that a loaded make test takes
# from the services under test. What they read is the same tables.
def caught_up(store: str) -> bool:
    """The projections at the ledger's head (what `mot status` says as `lag` 0)."""
    with open_store(store, create=False) as services:
        s = services.projections.status()
    return bool(s.head and s.position == s.head)


def relationship_versions(store: str) -> dict[str, int]:
    """Each relationship row's key (`tenant/customer_id`, the changelog's) and its version."""
    with open_store(store, create=False) as services:
        rows = services.queries.run(Query("relationships"))
    return {f"{r['tenant']}/{r['customer_id']}": int(r["version"]) for r in rows}


def relationships(store: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(mot(store, "query", "relationships", "--format", "json",
                                                "--no-refresh"))
    return sorted(rows, key=lambda r: (r["tenant"], r["customer_id"]))


def content(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows without `version` (the ledger position of their last change: the clean run's
    single projection and a follower's pages stamp different ones)."""
    return [{k: v for k, v in r.items() if k != "version"} for r in rows]


def clean_run(tmp_path: Path, lines: list[bytes]) -> str:
    """The same lines imported into a fresh SQLite store without trouble, and projected."""
    store = str(tmp_path / f"clean-{uuid.uuid4().hex[:6]}.db")
    mot(store, "import", "-", "-q", stdin=b"\n".join(lines) + b"\n")
    mot(store, "project", "-q")
    return store


# A connection is waited for up to the pool's timeout (10 s) before a round fails: an
# outage shorter than that is ridden out without a word, a longer one is said.
LONG_OUTAGE_S = 12


def assert_outages(log_text: str, at_most: int = 1, at_least: int = 0) -> None:
    """Each outage the service noticed is one line, and its end one more; no traceback."""
    lines = log_text.splitlines()
    said = sum(UNREACHABLE in line for line in lines)
    assert at_least <= said <= at_most, log_text
    assert sum(BACK in line for line in lines) == said, log_text
    assert "Traceback" not in log_text


def test_project_follow_survives_a_restart(private_pg: PrivateCluster, tmp_path: Path) -> None:
    store = database(private_pg)
    # What survives is the follower, not a volume: the first part is two of its pages.
    first, second = sample(1200, 21), sample(800, 22)
    mot(store, "import", "-", "-q", stdin=b"\n".join(first) + b"\n")
    log = tmp_path / "follow.log"
    follower = start(store, log, "project", "--follow", "--poll", "0.2", "-q")
    try:
        wait_until(lambda: caught_up(store), 90, "the follower caught up")
        private_pg.restart(down_s=LONG_OUTAGE_S)  # it polls meanwhile: every look fails
        mot(store, "import", "-", "-q", stdin=b"\n".join(second) + b"\n")
        wait_until(lambda: caught_up(store), 90, "the follower caught up after the restart")
        private_pg.terminate_backends()  # its connections killed between two looks
        mot(store, "import", "-", "-q", stdin=b"\n".join(sample(200, 23)) + b"\n")
        wait_until(lambda: caught_up(store), 90, "the follower caught up after pg_terminate_backend")
    finally:
        text = finish(follower, log)
    # Two outages at most: the restart, and pg_terminate_backend when it lands during a look
    # rather than between two (seen under load: each said once, and its end once).
    assert_outages(text, at_most=2, at_least=1)
    assert content(relationships(store)) == content(
        relationships(clean_run(tmp_path, first + second + sample(200, 23))))


def test_kafka_ingest_survives_a_restart(private_pg: PrivateCluster, broker: Broker,
                                         tmp_path: Path) -> None:
    store = database(private_pg)
    first, second = sample(3000, 31), sample(2000, 32)
    create_topic(broker.bootstrap, "moments", partitions=2)
    produce(broker.bootstrap, "moments", first)
    log = tmp_path / "ingest.log"
    ingest = start(store, log, *ingest_args(broker.bootstrap, "moments", "g-restart"))
    clean = clean_run(tmp_path, first)
    expected_first = ledger_events(clean)
    try:
        wait_until(lambda: len(ledger_events(store)) == len(expected_first), 120, "the first part in")
        private_pg.stop()
        produce(broker.bootstrap, "moments", second)  # polled while the store is down
        time.sleep(3)
        private_pg.start()
        # The clean store takes the second part after the first: the same events as both in
        # one import (ledger_events are sorted; the topic's partitions interleave them anyway).
        mot(clean, "import", "-", "-q", stdin=b"\n".join(second) + b"\n")
        expected = ledger_events(clean)
        wait_until(lambda: len(ledger_events(store)) >= len(expected), 120, "the second part in")
        time.sleep(1)  # anything doubled would show up now
    finally:
        text = finish(ingest, log)
    assert_outages(text)
    assert ledger_events(store) == expected


def test_kafka_publish_follow_survives_a_restart(private_pg: PrivateCluster, broker: Broker,
                                                 tmp_path: Path) -> None:
    store = database(private_pg)
    first, second = sample(800, 41), sample(400, 42)
    mot(store, "import", "-", "-q", stdin=b"\n".join(first) + b"\n")
    log = tmp_path / "publish.log"
    publisher = start(store, log, "kafka", "publish", "--bootstrap-servers", broker.bootstrap,
                      "--follow", "--poll", "0.2", "-q")

    def latest() -> dict[bytes, Any]:
        out: dict[bytes, Any] = {}
        for record in read_topic(broker.bootstrap, "mot.relationships"):
            out[record.key] = orjson.loads(record.value) if record.value is not None else None
        return out

    def published_all(store_rows: dict[str, int]) -> bool:
        try:
            got = latest()
        except Exception:  # the topic not created yet
            return False
        return len(got) == len(store_rows) and all(
            got.get(key.encode(), {}).get("version") == version for key, version in store_rows.items())

    try:
        wait_until(lambda: caught_up(store) and published_all(relationship_versions(store)), 120,
                   "the first rows published")
        private_pg.restart(down_s=3)
        mot(store, "import", "-", "-q", stdin=b"\n".join(second) + b"\n")
        wait_until(lambda: caught_up(store) and published_all(relationship_versions(store)), 120,
                   "the rows changed after the restart published")
    finally:
        text = finish(publisher, log)
    assert_outages(text)
    assert content(relationships(store)) == content(relationships(clean_run(tmp_path, first + second)))


def test_serve_survives_a_restart(private_pg: PrivateCluster, tmp_path: Path) -> None:
    store = database(private_pg)
    lines = sample(1500, 51, tenants=("acme",), corrections=False)
    first, second = lines[:1000], lines[1000:]
    token = mot(store, "token", "create", "--tenant", "acme", "--scope", "read,write").split()[-1]
    port = free_port()
    log = tmp_path / "serve.log"
    server = start(store, log, "serve", "--host", "127.0.0.1", "--port", str(port),
                   "--no-access-log")

    def request(method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request(method, path, body=body, headers={
                "Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def up() -> bool:
        try:
            return request("GET", "/healthz")[0] == 200
        except OSError:
            return False

    def post(batch: list[bytes]) -> None:
        status_code, body = request("POST", "/v1/moments", b"\n".join(batch))
        assert status_code == 200, body

    try:
        wait_until(up, 180, "mot serve up")
        post(first)
        private_pg.restart(down_s=3)
        wait_until(up, 180, "mot serve answers after the restart")
        post(second)
        wait_until(lambda: caught_up(store), 90, "the server's projector caught up")
        status_code, body = request("GET", "/v1/relationships?limit=100000")
        assert status_code == 200, body
    finally:
        # uvicorn ends by re-raising SIGTERM once it has shut down cleanly
        process_log = finish(server, log, exits=(0, -signal.SIGTERM))
    assert_outages(process_log)
    served = sorted(orjson.loads(body)["records"] if isinstance(orjson.loads(body), dict)
                    else orjson.loads(body), key=lambda r: r["customer_id"])
    clean = [r for r in relationships(clean_run(tmp_path, lines)) if r["tenant"] == "acme"]
    assert [r["customer_id"] for r in served] == [r["customer_id"] for r in clean]
    assert content(relationships(store)) == content(clean)


def test_alerts_deliver_follow_survives_a_restart(private_pg: PrivateCluster,
                                                  tmp_path: Path) -> None:
    """`mot alerts deliver --follow` to a real receiver on 127.0.0.1: the server goes down
    while a batch is on the wire (its outcomes cannot be recorded), and its backends are
    terminated later; every alert, those raised before and after, arrives exactly once."""
    from alert_support import config_text, make_alert, receiving

    from mot.bootstrap import open_store

    store = database(private_pg)
    first = [make_alert(n) for n in range(120)]
    second = [make_alert(n) for n in range(120, 180)]
    with open_store(store) as services:
        services.alert_outbox.raise_alerts(first)

    calls = iter(range(1, 10**6))

    def answer(alert: str, seen: int) -> tuple[int, float]:
        # The fourth batch of 10 is answered after 5 s: the server goes down meanwhile.
        return 200, 5.0 if 31 <= next(calls) <= 40 else 0.01

    def delivered(receiver: Any, expected: int) -> bool:
        return len(receiver.counts()) == expected

    with receiving("k", answer) as receiver:
        config = tmp_path / "mot.toml"
        config.write_text(config_text(f'url = "{receiver.url}"\nsecret = "k"'))
        log = tmp_path / "deliver.log"
        # A lease shorter than the outage: were the batch's outcomes dropped, the batch would
        # be claimed and sent again once the store is back.
        deliverer = start(store, log, "alerts", "deliver", "--follow", "--poll", "0.2",
                          "--config", str(config), "--batch", "10", "--lease", "3")
        try:
            wait_until(lambda: len(receiver.received) >= 31, 180, "the fourth batch on the wire",
                       every=0.01)
            private_pg.stop()  # down until the deliverer has given up waiting for it
            wait_until(lambda: UNREACHABLE in log.read_text(), 180, "the outage said")
            private_pg.start()
            with open_store(store) as services:
                services.alert_outbox.raise_alerts(second)
            wait_until(lambda: delivered(receiver, len(first) + len(second)), 120,
                       "every alert delivered after the restart")
            # The last batch on the wire is not the end of its round (its outcomes are recorded
            # after it): wait for the round's success to be said before the next outage.
            wait_until(lambda: BACK in log.read_text(), 180, "the recovery said")
            private_pg.terminate_backends()  # its connections killed between two rounds
            time.sleep(1)  # anything sent again would show up now
            # On a loaded machine a round can be under way when its connection is killed: the
            # deliverer then says an outage, and its end once the next round succeeds.
            wait_until(lambda: log.read_text().count(BACK) == log.read_text().count(UNREACHABLE),
                       180, "the end of every outage said", logs=[log])
        finally:
            # The deliverer ends on SIGTERM's default action (nothing to flush: each batch's
            # outcomes are recorded before the next is claimed).
            text = finish(deliverer, log, exits=(0, -signal.SIGTERM))
        counts = receiver.counts()
        assert set(counts) == {a.alert_id for a in first + second}
        assert [ident for ident, n in counts.items() if n > 1] == []  # nothing doubled
        assert receiver.overlaps == [] and receiver.bad_signatures == 0
    assert_outages(text, at_least=1, at_most=2)
    with open_store(store) as services:
        assert services.alert_outbox.counts().delivered == len(first) + len(second)


def test_one_shot_commands_fail_fast_with_one_line(private_pg: PrivateCluster) -> None:
    store = database(private_pg)
    mot(store, "import", "-", "-q", stdin=b"\n".join(sample(50, 61)) + b"\n")
    private_pg.stop()
    try:
        done, took = timed_mot(["--store", store, "project"], imports=("psycopg", "mot.bootstrap"),
                               timeout=300, exits=None)
        assert done.returncode != 0
        assert took < 30, done.stderr
        said = done.stderr.splitlines()
        errors = [line for line in said if line.strip()]
        assert len(errors) == 1 and errors[0].startswith("Error:"), errors
    finally:
        private_pg.start()
