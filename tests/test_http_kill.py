"""Nothing answered as accepted is lost: `mot serve` killed with SIGKILL right after answering.

A real server process on loopback, four clients posting batches at once; the moment the
first answers are in, the server gets SIGKILL (requests still in flight get no answer and
claim nothing). Reopening the store, every moment an answer called recorded is in the
ledger. Then a restarted server takes the same batches again: what was recorded is a
duplicate, what was cut off is recorded now.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import httpx
import orjson
import pytest
from http_support import free_port, serve

from mot.bootstrap import open_store

pytestmark = pytest.mark.slow

CLIENTS = 4
BATCHES = 6  # per client
SIZE = 200


def batch(client: int, number: int) -> bytes:
    return b"\n".join(orjson.dumps({
        "customer_id": f"k{client}-{number % 7}", "occurred_at": "2026-03-01T09:00:00Z",
        "channel": "chat", "direction": "inbound", "kind": "question",
        "source": {"system": "kill", "id": f"{client}-{number}-{i}"},
    }) for i in range(SIZE))


def test_sigkill_right_after_answering_loses_nothing_answered(store_url: str) -> None:
    services = open_store(store_url)
    _, token = services.access.create("acme", "write")
    services.close()
    headers = {"Authorization": f"Bearer {token}"}
    port = free_port()
    proc = serve(store_url, port)
    answered: list[dict[str, Any]] = []
    lock = threading.Lock()
    first = threading.Event()

    def client(number: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30) as http:
            for b in range(BATCHES):
                try:
                    response = http.post("/v1/moments", content=batch(number, b))
                except httpx.HTTPError:
                    return  # the server is gone: this batch got no answer and claims nothing
                assert response.status_code == 200, response.text
                with lock:
                    answered.append(response.json())
                first.set()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    assert first.wait(60), "no answer within 60 s"
    os.kill(proc.pid, signal.SIGKILL)  # right after the first answer, others in flight
    proc.wait(10)
    for thread in threads:
        thread.join(60)
    with lock:
        claims = [item["moment_id"] for answer in answered for item in answer["items"]
                  if item["outcome"] == "recorded"]
    assert claims, "no batch was answered before the kill"
    assert len(answered) < CLIENTS * BATCHES, "every batch was answered: nothing was cut off"

    services = open_store(store_url)
    try:
        missing = [m for m in claims if not services.ledger_store.stream(m)]
        assert missing == [], f"{len(missing)} moments answered recorded are not in the ledger"
        head = services.ledger_store.head()
        assert head >= len(claims)
    finally:
        services.close()

    # A restarted server: everything sent again; what was recorded is a duplicate.
    proc = serve(store_url, port)
    try:
        claimed = set(claims)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30) as http:
            for number in range(CLIENTS):
                for b in range(BATCHES):
                    items = http.post("/v1/moments", content=batch(number, b)).json()["items"]
                    for item in items:
                        if item["moment_id"] in claimed:
                            assert item["outcome"] == "duplicate"
                        else:
                            assert item["outcome"] in ("recorded", "duplicate")
    finally:
        proc.send_signal(signal.SIGTERM)  # a graceful stop (uvicorn re-raises the signal after it)
        assert proc.wait(30) in (0, -signal.SIGTERM)
    services = open_store(store_url)
    try:
        # Every moment once. Counted, not read off the head: on PostgreSQL a batch killed
        # inside its INSERT has taken positions from the sequence and leaves them a gap.
        store = services.ledger_store
        assert store.count(store.head()) == CLIENTS * BATCHES * SIZE
    finally:
        services.close()
