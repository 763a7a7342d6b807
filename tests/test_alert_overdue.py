"""`overdue` alerts (SPEC §3.6): time, not a moment, makes a request overdue; a periodic check in
`mot alerts deliver`, `mot project --follow` and `mot serve` raises each overdue request once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alert_support import config_text, receiving
from cli_support import mot

from mot.service.alerting import AlertQuery

MOT = Path(sys.executable).parent / "mot"


def moment(n: int, customer: str, ago: timedelta, kind: str = "question", *, now: datetime,
           direction: str = "inbound", function: str = "service", **extra: Any) -> str:
    return json.dumps({
        "tenant": "acme", "customer_id": customer, "channel": "email", "direction": direction,
        "kind": kind, "function": function, "actor": f"@{customer}",
        "occurred_at": (now - ago).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "source": {"system": "zendesk", "id": f"t-{n}"}, **extra})


def moments_file(tmp_path: Path) -> Path:
    # Times before now, the time of writing: times before the module's import (a constant
    # before) made c2 overdue too when the test ran more than 30 min after it (a loaded run).
    now = datetime.now(UTC)
    lines = [
        moment(1, "c1", timedelta(hours=2), now=now),  # overdue: the target is 1 h
        moment(2, "c2", timedelta(minutes=30), now=now),  # not yet
        moment(3, "c3", timedelta(hours=2), now=now),
        moment(4, "c3", timedelta(hours=1, minutes=50), "answer", now=now,
               direction="outbound"),  # answered
        moment(5, "c4", timedelta(hours=100), now=now),  # overdue, but older than the window
        moment(6, "c5", timedelta(hours=2), "complaint", now=now, function="logistics"),  # no target
    ]
    path = tmp_path / "moments.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_an_overdue_request_raises_once_and_is_delivered(tmp_path: Path) -> None:
    store = str(tmp_path / "mot.db")
    written = datetime.now(UTC)  # at most the moments' "now"
    mot(store, "import", "-q", moments_file(tmp_path))
    with receiving("k") as receiver:
        config = tmp_path / "mot.toml"
        config.write_text(config_text(f'url = "{receiver.url}"\nsecret = "k"\nrules = ["overdue"]',
                                      extra='[targets.first_response]\nservice = "1h"\n'))
        mot(store, "project", env={"MOT_CONFIG": str(config)})
        mot(store, "alerts", "deliver", "--config", config)
        mot(store, "alerts", "deliver", "--config", config)  # checked again: raised once
        [post] = receiver.received
    alert = post["body"]
    assert (alert["rule"], alert["customer_id"], alert["kind"], alert["function"]) == (
        "overdue", "c1", "question", "service")
    assert (alert["actor"], alert["channel"], alert["target_seconds"]) == ("@c1", "email", 3600)
    # Two hours waited against a target of one, and however long since the moments were
    # written; the moment's time is written to the second, up to a second before.
    assert 3600 <= alert["overdue_seconds"] <= 3601 + (datetime.now(UTC) - written).total_seconds()
    listed = json.loads(mot(store, "alerts", "list", "--rule", "overdue", "--format", "json").stdout)
    assert [a["alert_id"] for a in listed] == [alert["alert_id"]]


def test_project_follow_runs_the_overdue_check(tmp_path: Path) -> None:
    store = str(tmp_path / "mot.db")
    mot(store, "import", "-q", moments_file(tmp_path))
    config = tmp_path / "mot.toml"
    config.write_text('[targets.first_response]\nservice = "1h"\n')
    follower = subprocess.Popen([str(MOT), "--store", store, "project", "--follow", "--poll", "0.1"],
                                env={**os.environ, "MOT_CONFIG": str(config)},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        found: list[dict[str, Any]] = []
        while not found and time.monotonic() < deadline:
            time.sleep(0.2)
            found = json.loads(mot(store, "alerts", "list", "--rule", "overdue",
                                   "--format", "json").stdout)
        assert [a["customer_id"] for a in found] == ["c1"]
    finally:
        follower.send_signal(signal.SIGTERM)
        follower.wait(30)


def test_serve_runs_the_overdue_check(tmp_path: Path, store_url: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from mot.adapters.http.app import create_app
    from mot.bootstrap import open_store

    config = tmp_path / "mot.toml"
    config.write_text('[targets.first_response]\nservice = "1h"\n')
    monkeypatch.setenv("MOT_CONFIG", str(config))
    mot(store_url, "import", "-q", moments_file(tmp_path))
    with open_store(store_url) as services, TestClient(create_app(services, project_every=0.05)):
        deadline = time.monotonic() + 120
        found: list[Any] = []
        while not found and time.monotonic() < deadline:
            time.sleep(0.1)
            found = services.alerts.find(AlertQuery(rule="overdue"))
        assert [s.alert.customer_id for s in found] == ["c1"]
        assert dict(found[0].alert.details)["target_seconds"] == 3600


def test_the_memory_store_reads_its_open_requests_as_the_sql_stores_do(tmp_path: Path) -> None:
    from mot.adapters.stores.memory import MemoryLedger, MemoryProjectionStore
    from mot.projections.engine import Engine
    from mot.service.ledger import Incoming, LedgerService

    ledger = MemoryLedger()
    LedgerService(ledger).record([Incoming(line, f"t:{n}") for n, line in
                                  enumerate(moments_file(tmp_path).read_bytes().splitlines(), 1)])
    store = MemoryProjectionStore(ledger)
    Engine(store, ledger).catch_up()
    with_sql = str(tmp_path / "sql.db")
    mot(with_sql, "import", "-q", moments_file(tmp_path))
    mot(with_sql, "project")
    from mot.bootstrap import open_store

    everything = (0, 2**62)
    with open_store(with_sql) as services:
        expected = services.alert_outbox.open_requests(*everything)
    assert store.alerts.open_requests(*everything) == expected
    assert [r.customer_id for r in expected] == ["c4", "c1", "c5", "c2"]
    assert expected[1].actor == "@c1"
