"""No request can exhaust `mot serve`: memory, the body budget and slow clients, on the real server.

A real `mot serve` process on loopback with its default limits: 8 MiB of `[{},{},…]`
(2.8 million messages, inside the body limit) is refused whole with 413; a batch at the
item limit, and 8 MiB of valid moments, are recorded in chunks; the server's resident
memory (VmRSS of /proc/PID/status, sampled throughout) stays under 300 MB, and other
clients are answered meanwhile. Then the memory budget and the read timeout: a body that
trickles in holds its share of the budget, others wait and get 503 with Retry-After, the
trickler gets 408; headers that never finish, and a connection that sends nothing, are
closed.
"""

from __future__ import annotations

import gzip
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import pytest
from http_support import free_port, serve

from mot.bootstrap import open_store

pytestmark = pytest.mark.slow

MiB = 1024 * 1024
RSS_LIMIT = 300 * MiB
RSS_KILL = 1500 * MiB  # the server is stopped past this, so that a regression cannot take the machine
MAX_ITEMS = 100_000  # mot serve's default --max-items


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


@dataclass
class Watch:
    """The server's peak RSS, and the answers to a client that keeps asking /healthz."""

    pid: int
    peak: int = 0
    killed: bool = False
    pings: list[tuple[float, float, int]] = field(default_factory=list)  # sent, answered, status
    stop: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> None:
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, rss(self.pid))
            except (OSError, AssertionError):
                return  # the process is gone
            if self.peak > RSS_KILL:
                self.killed = True
                os.kill(self.pid, signal.SIGKILL)
                return
            self.stop.wait(0.02)

    def ping(self, url: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            while not self.stop.is_set():
                sent = time.monotonic()
                try:
                    status = http.get("/healthz").status_code
                except httpx.HTTPError:
                    status = 0
                self.pings.append((sent, time.monotonic(), status))
                self.stop.wait(0.1)

    def answered_between(self, start: float, end: float) -> list[float]:
        """How long each ping sent and answered within [start, end] took."""
        return [done - sent for sent, done, status in self.pings
                if status == 200 and start <= sent and done <= end]


@contextmanager
def server(store: str, *options: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    proc = serve(store, port, *options)
    try:
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def tokens(store: str) -> dict[str, str]:
    with open_store(store) as services:
        access = services.access
        return {tenant: access.create(tenant, "read,write")[1] for tenant in ("acme", "globex")}


def moments(size: int) -> bytes:
    """NDJSON of distinct valid moments, just under `size` bytes."""
    lines: list[bytes] = []
    total = 0
    number = 0
    while True:
        line = orjson.dumps({
            "customer_id": f"c{number % 997}", "occurred_at": "2026-03-01T09:00:00Z",
            "channel": "chat", "direction": "inbound", "kind": "question",
            "source": {"system": "memory", "id": f"m-{number}"},
        })
        if total + len(line) + 1 > size:
            return b"\n".join(lines)
        lines.append(line)
        total += len(line) + 1
        number += 1


def test_large_batches_keep_the_servers_memory_bounded(tmp_path: Path) -> None:
    store = str(tmp_path / "mot.db")
    token = tokens(store)
    with server(store) as (url, proc):
        watch = Watch(proc.pid)
        threads = [threading.Thread(target=watch.sample), threading.Thread(target=watch.ping,
                                                                           args=(url,))]
        for thread in threads:
            thread.start()
        try:
            with httpx.Client(base_url=url, timeout=300) as http:
                acme = {"Authorization": f"Bearer {token['acme']}"}
                globex = {"Authorization": f"Bearer {token['globex']}"}
                # 8 MiB of empty objects: refused whole, before anything is recorded.
                count = (8 * MiB - 2 + 1) // 3
                empties = b"[" + b",".join([b"{}"] * count) + b"]"
                assert len(empties) <= 8 * MiB
                started = time.monotonic()
                answer = http.post("/v1/moments", content=empties, headers=acme)
                assert answer.status_code == 413, answer.text[:500]
                assert f"more than {MAX_ITEMS:,} messages" in answer.text
                del empties
                # Exactly the limit: taken, every one quarantined, a chunk at a time.
                at_limit = b"\n".join([b"{}"] * MAX_ITEMS)
                answer = http.post("/v1/moments", content=at_limit, headers=acme)
                assert answer.status_code == 200, answer.text[:500]
                assert answer.json()["counts"] == {"quarantined": MAX_ITEMS}
                # 8 MiB of valid moments, while another tenant posts one of its own.
                body = moments(8 * MiB)
                expected = body.count(b"\n") + 1
                other: list[int] = []
                side = threading.Thread(target=lambda: other.append(httpx.post(
                    f"{url}/v1/moments", content=moments(300), headers=globex,
                    timeout=120).status_code))
                side.start()
                answer = http.post("/v1/moments", content=body, headers=acme)
                side.join(120)
                finished = time.monotonic()
                assert answer.status_code == 200, answer.text[:500]
                assert answer.json()["counts"] == {"recorded": expected}
                assert [i["index"] for i in answer.json()["items"]] == list(range(expected))
                assert other == [200]
        finally:
            watch.stop.set()
            for thread in threads:
                thread.join(60)
        assert not watch.killed, f"mot serve passed {RSS_KILL // MiB} MB and was stopped"
        print(f"peak RSS of mot serve: {watch.peak / MiB:.0f} MB")
        assert watch.peak < RSS_LIMIT, f"peak RSS {watch.peak / MiB:.0f} MB"
        waits = watch.answered_between(started, finished)
        assert len(waits) >= 5, f"only {len(waits)} health checks answered meanwhile"
        # Not held for the ingest: a blocked server would keep a check waiting for most of it.
        # A fixed bound (5 s) failed on a loaded machine (5.6 s, the others 0.1-0.3 s).
        bound = max(5.0, (finished - started) / 4)
        assert max(waits) < bound, (f"a health check waited {max(waits):.1f} s of the"
                                    f" {finished - started:.1f} s ingest")
    with open_store(store) as services:
        assert services.ledger_store.head() == expected + 1
        assert services.ledger_store.quarantine_count() >= 1


def send_partial(url: str, head: bytes) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=120)
    sock.sendall(head)
    return sock


def read_by_the_server(sock: socket.socket) -> bool:
    """Whether the server has read what `sock` sent: its end of the connection holds no
    unread bytes (the kernel's receive queue, /proc/net/tcp's rx_queue)."""
    ours, theirs = sock.getsockname()[1], sock.getpeername()[1]
    with open("/proc/net/tcp") as table:
        for row in table.read().splitlines()[1:]:
            fields = row.split()
            local, remote = int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16)
            if (local, remote) == (theirs, ours):
                return int(fields[4].split(":")[1], 16) == 0
    return False


def held(url: str, head: bytes, count: int) -> list[socket.socket]:
    """`count` requests that send `head` and no more, each once the server has read it."""
    trickles = [send_partial(url, head) for _ in range(count)]
    for trickle in trickles:
        started = time.monotonic()
        while not read_by_the_server(trickle):
            assert time.monotonic() - started < 120, "the server did not read a request"
            time.sleep(0.01)
    return trickles


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_slow_clients_and_the_memory_budget(tmp_path: Path) -> None:
    store = str(tmp_path / "mot.db")
    token = tokens(store)["acme"]
    small = moments(300)
    # The read timeout is the window in which the second request has to come while the
    # first holds the budget: 2 s was too short on a loaded machine (the second got 200).
    options = ("--max-body", "4KiB", "--memory-budget", "4KiB", "--budget-wait", "0.5",
               "--read-timeout", "6")
    with server(store, *options) as (url, _):
        # A body that trickles in: it holds the whole budget until its 408.
        sent = time.monotonic()
        trickle = send_partial(url, (
            f"POST /v1/moments HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            "Content-Length: 4000\r\n\r\n").encode() + small[:10])
        # Once the server has read its head, its request is taken up before the next one's.
        while not read_by_the_server(trickle):
            assert time.monotonic() - sent < 120, "the server did not read the first request"
            time.sleep(0.01)
        time.sleep(0.3)
        headers = {"Authorization": f"Bearer {token}"}
        busy = httpx.post(f"{url}/v1/moments", content=small, headers=headers, timeout=120)
        assert busy.status_code == 503, busy.text
        assert busy.headers["retry-after"] == "2"
        assert "memory budget" in busy.text
        timed_out = read_all(trickle)
        assert timed_out.startswith(b"HTTP/1.1 408 "), timed_out[:200]
        assert b"did not arrive within 6 s" in timed_out
        assert 5.5 < time.monotonic() - sent < 60
        assert httpx.post(f"{url}/v1/moments", content=small, headers=headers,
                          timeout=120).status_code == 200
        # Headers that never end, and a connection that says nothing: closed (after the
        # read timeout; the upper bound only says it happened at all, whatever the load).
        for head in (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ", b""):
            started = time.monotonic()
            assert read_all(send_partial(url, head)) == b""
            assert 5.5 < time.monotonic() - started < 60
        assert httpx.get(f"{url}/healthz", timeout=120).status_code == 200


def test_a_compressed_body_is_refused_naming_content_encoding(tmp_path: Path) -> None:
    """A gzip body (Content-Encoding: gzip) was read as text: 400 'not UTF-8 text (byte 0x8b
    at byte 2)', which did not say what to change. Now 415 naming the header, before the
    body is read, on every route that takes one; nothing is recorded."""
    store = str(tmp_path / "mot.db")
    token = tokens(store)
    body = moments(2000)
    auth = {"Authorization": f"Bearer {token['acme']}"}
    with server(store) as (url, _), httpx.Client(base_url=url, timeout=60) as http:
        for path in ("/v1/moments", "/v1/webhooks/hubspot"):
            refused = http.post(path, content=gzip.compress(body),
                                headers={**auth, "Content-Encoding": "gzip"})
            assert refused.status_code == 415, refused.text
            problem = refused.json()
            assert problem["code"] == "unsupported_encoding"
            assert problem["field"] == "Content-Encoding"
            assert problem["detail"] == (
                "Content-Encoding 'gzip' is not read: send the body uncompressed, without a "
                "Content-Encoding header (or 'identity'); nothing was recorded")
        assert http.get("/v1/relationships?refresh=true", headers=auth).json() == []
        answer = http.post("/v1/moments", content=body,
                           headers={**auth, "Content-Encoding": "identity"})
        assert answer.status_code == 200, answer.text
        assert set(answer.json()["counts"]) == {"recorded"}
