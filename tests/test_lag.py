"""Lag you can alert on: `mot status`, /metrics and /healthz say how old the oldest event waiting
for the projections is, and when they last made progress."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from process_support import run

from mot.adapters.http.app import create_app
from mot.adapters.http.deps import HEALTH_FRESH_S
from mot.bootstrap import open_store
from mot.domain.timefmt import parse_utc

MOT = Path(sys.executable).parent / "mot"


def status(store: str) -> dict[str, object]:
    out = run([str(MOT), "--store", store, "status", "--format", "json"], text=True,
              timeout=120).stdout
    result: dict[str, object] = json.loads(out)
    return result


def test_status_reports_lag_in_seconds_and_last_progress(store_url: str, golden_path: Path) -> None:
    run([str(MOT), "--store", store_url, "import", str(golden_path), "-q"], timeout=120)
    time.sleep(1.2)
    waiting = status(store_url)
    assert waiting["lag"] == 35 and waiting["last_progress_at"] is None
    assert isinstance(waiting["lag_seconds"], float) and 1.0 <= waiting["lag_seconds"] < 60
    assert waiting["oldest_unprojected_at"] is not None

    run([str(MOT), "--store", store_url, "project", "-q"], timeout=120)
    done = status(store_url)
    assert (done["lag"], done["lag_seconds"], done["oldest_unprojected_at"]) == (0, 0.0, None)
    assert isinstance(done["last_progress_at"], str)
    assert abs(time.time() - parse_utc(done["last_progress_at"]).timestamp()) < 60


def test_healthz_turns_503_when_the_projections_stall_while_events_wait(
        store_url: str, golden_path: Path) -> None:
    services = open_store(store_url)
    try:
        lines = [line for line in golden_path.read_bytes().splitlines() if line.strip()]
        from mot.service.ledger import Incoming

        services.ledger.record([Incoming(line, f"test:{i}") for i, line in enumerate(lines[:10])])
        # No background projector and nobody following: the events just wait.
        with TestClient(create_app(services, stall_after_s=0.5)) as client:
            time.sleep(1.0)
            stalled = client.get("/healthz")
            assert stalled.status_code == 503
            assert stalled.json()["code"] == "projector_stalled"
            # Anyone may ask /healthz: it gives no count of (every tenant's) waiting events.
            assert stalled.json()["detail"] == (
                "the projections have made no progress for more than 0.5 s while events wait "
                "(how many: mot status, or /metrics' mot_projection_lag)")
            assert "10" not in stalled.text
            metrics = client.get("/metrics").text
            lag_line = next(line for line in metrics.splitlines()
                            if line.startswith("mot_projection_lag_seconds "))
            assert float(lag_line.split()[1]) >= 1.0
            assert "mot_projection_last_progress_timestamp_seconds 0.0" in metrics

            services.projections.project()
            time.sleep(HEALTH_FRESH_S)  # the stall's answer is given again for a second
            assert client.get("/healthz").status_code == 200
            metrics = client.get("/metrics").text
            assert "mot_projection_lag_seconds 0.0" in metrics
            progress = next(line for line in metrics.splitlines()
                            if line.startswith("mot_projection_last_progress_timestamp_seconds "))
            assert abs(float(progress.split()[1]) - time.time()) < 60
    finally:
        services.close()


@pytest.mark.postgres
def test_a_flood_of_healthz_asks_the_store_once_a_second(pg_url: str,
                                                         pg_schema_url: str) -> None:
    """A real `mot serve`: anyone may ask /healthz, and each ask read the store on the thread
    pool ingest uses (a flood of them queued behind a slow store). Its answer now lasts a
    second: with every table of the store locked, the asks of that second are answered at
    once; the next one waits for the store (the answer is the store's, a second old at most)."""
    from test_http_limits import server, tokens

    tokens(pg_schema_url)
    schema = pg_schema_url.rsplit("schema=", 1)[1]
    with (server(pg_schema_url) as (url, _), httpx.Client(base_url=url, timeout=30) as http,
          psycopg.connect(pg_url) as locker):
        assert http.get("/healthz").status_code == 200  # the answer of this second
        tables = [row[0] for row in locker.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))]
        locker.execute(f"LOCK TABLE {', '.join(f'{schema}.{t}' for t in tables)}"
                       " IN ACCESS EXCLUSIVE MODE")
        asked = [http.get("/healthz", timeout=0.5) for _ in range(5)]
        assert [a.status_code for a in asked] == [200] * 5
        time.sleep(HEALTH_FRESH_S)
        later: list[int] = []
        waiting = threading.Thread(
            target=lambda: later.append(http.get("/healthz").status_code))
        waiting.start()
        waiting.join(1.0)
        assert waiting.is_alive() and not later  # it asks the store, which is locked
        locker.commit()
        waiting.join(30)
        assert later == [200]
