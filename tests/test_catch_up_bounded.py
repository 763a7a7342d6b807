"""A catch-up ends at the ledger's head as it was when it began, however fast writers go on
recording meanwhile (`mot project`, and the catch-up an erasure runs first)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from mot.adapters.sources.sample import generate_lines
from mot.bootstrap import open_store
from mot.service.importing import record_stream
from mot.service.ledger import Incoming


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_catch_up_does_not_chase_writers_that_keep_recording(kind: str,
                                                               make_store_url: Any) -> None:
    url = str(make_store_url(kind))
    lines = list(generate_lines(100_000, seed=11))
    first, rest = lines[:2_000], lines[2_000:]
    with open_store(url) as services:
        record_stream(services.ledger, (Incoming(m, f"first:{n}") for n, m in enumerate(first)))
        services.projections.project()  # built: what follows is a catch-up, not a rebuild
    stop = threading.Event()
    recorded: list[int] = []

    def writer() -> None:
        with open_store(url) as services:
            for start in range(0, len(rest), 500):
                if stop.is_set():
                    return
                chunk = rest[start:start + 500]
                record_stream(services.ledger, (Incoming(m, f"rest:{start + n}")
                                                for n, m in enumerate(chunk)), commit_every=500)
                recorded.append(len(chunk))

    thread = threading.Thread(target=writer)
    # Pages of 20 events: applying them is slower than the writer records, as a busy
    # server's steady ingest was against an erasure's catch-up.
    with open_store(url, page_size=20) as services:
        thread.start()
        try:
            while not recorded:
                time.sleep(0.01)
            head = services.projections.log.head()
            applied = services.projections.project()
            still_writing = thread.is_alive()
            position = services.projections.position()
        finally:
            stop.set()
            thread.join(120)
    assert still_writing, "the catch-up chased the writer until it had recorded everything"
    assert position >= head > 2_000  # everything recorded before it began
    assert applied < len(rest)
