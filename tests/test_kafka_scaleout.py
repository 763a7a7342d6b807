"""Scale out: two `mot kafka ingest` processes in one group, one PostgreSQL store, one killed mid-stream.

Each moment is recorded exactly once (the ledger equals a clean import of the
same moments), and `mot project --follow`, running all along, ends up with the
projections of the clean run.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from kafka_support import (
    GROUP_OPTIONS,
    Broker,
    broker,
    committed,
    create_topic,
    head,
    import_lines,
    ledger_events,
    mot_process,
    produce,
    project,
    projections,
    wait_until,
)

from mot.bootstrap import open_store

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.postgres,
              pytest.mark.slow]
__all__ = ["broker"]


def consumer(store: str, bootstrap: str, log: Path) -> subprocess.Popen[bytes]:
    return mot_process(store, "kafka", "ingest", "--bootstrap-servers", bootstrap, "--topic",
                       "moments", "--group", "scale", "--batch-size", "100", *GROUP_OPTIONS,
                       "--summary-json", log=log)


def test_two_consumers_one_killed_record_each_moment_once(broker: Broker, make_store_url: Any,
                                                          tmp_path: Path) -> None:
    from mot.adapters.sources.sample import generate_lines

    lines = [line.rstrip(b"\n") for line in generate_lines(4000, seed=23, corrections=True)]
    clean = make_store_url("sqlite")
    import_lines(clean, lines)
    project(clean)

    store = make_store_url("postgres")
    create_topic(broker.bootstrap, "moments", partitions=4)
    produce(broker.bootstrap, "moments", lines[:2500])
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    a = consumer(store, broker.bootstrap, logs[0])
    b = consumer(store, broker.bootstrap, logs[1])
    processes = [a, b]
    try:
        def both_assigned() -> bool:
            texts = [log.read_text() if log.exists() else "" for log in logs]
            return all("partitions assigned: moments/" in t for t in texts)

        wait_until(both_assigned, 120, "both consumers to get partitions", logs=logs)
        # The projector joins while both consumers are recording.
        follower = mot_process(store, "project", "--follow", "--poll", "0.2", log=tmp_path / "p.log")
        processes.append(follower)
        wait_until(lambda: head(store) > 800, 120, "ingest under way")
        a.send_signal(signal.SIGKILL)  # mid-stream: its last batch may be recorded, not committed
        a.wait(10)
        produce(broker.bootstrap, "moments", lines[2500:])
        wait_until(lambda: sum(v or 0 for v in committed(broker.bootstrap, "scale",
                                                          "moments").values()) == len(lines),
                   60, "the survivor to take over the killed consumer's partitions and finish")
        out, _ = b.communicate(timeout=1) if b.poll() is not None else (None, None)
        assert out is None, "the surviving consumer exited"
        b.send_signal(signal.SIGTERM)
        out, _ = b.communicate(timeout=30)
        assert b.returncode == 0, logs[1].read_text()
        assert json.loads(out)["read"] > 0

        assert ledger_events(store) == ledger_events(clean)

        def caught_up() -> bool:
            services = open_store(store)
            try:
                status = services.projections.status()
                return status.position == status.head
            finally:
                services.close()

        wait_until(caught_up, 120, "mot project --follow to reach the ledger's head")
        follower.send_signal(signal.SIGTERM)
        follower.wait(120)
        assert follower.returncode == 0, (tmp_path / "p.log").read_text()
        assert projections(store) == projections(clean)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)
