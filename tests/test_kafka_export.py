"""`mot kafka export`: the ledger to a topic in notification order; ingesting it elsewhere gives the same.

The golden fixture (with an amendment, a retraction and a duplicate) goes into
one store, out to a topic, and through `mot kafka ingest` into an empty store:
the same ledger (moment ids, versions, event types) and the same projections.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import orjson
import pytest
from kafka_support import (
    Broker,
    broker,
    import_lines,
    ingest_args,
    kafka_summary,
    ledger_events,
    lines_of,
    mot_run,
    project,
    projections,
    read_topic,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
__all__ = ["broker"]


export = partial(kafka_summary, "export")


def test_export_then_ingest_into_an_empty_store_gives_the_same_ledger_and_projections(
        broker: Broker, store_url: str, tmp_path: Path, golden_path: Path) -> None:
    source = str(tmp_path / "source.db")
    import_lines(source, lines_of(golden_path))
    summary = export(source, broker.bootstrap, "--topic", "moments.replay")
    assert summary["sent"] == summary["read"] == 35  # 33 moments, an amendment, a retraction

    messages = read_topic(broker.bootstrap, "moments.replay")
    positions = [int(dict(m.headers)["position"]) for m in messages]
    assert positions == sorted(positions) and len(set(positions)) == 35  # notification order
    kinds = [dict(m.headers)["event"] for m in messages]
    assert kinds.count(b"amended") == 1 and kinds.count(b"retracted") == 1
    for message in messages:
        wire = orjson.loads(message.value)
        assert message.key.decode() == wire["moment_id"]
    amend = next(orjson.loads(m.value) for m in messages if dict(m.headers)["event"] == b"amended")
    # With its tenant: a moment id names a moment within a tenant (SPEC §2).
    assert set(amend) == {"type", "moment_id", "tenant", "set", "reason"}
    assert amend["type"] == "amend" and amend["tenant"] == "acme"

    mot_run(store_url, *ingest_args(broker.bootstrap, "moments.replay", "replay",
                                    "--exit-when-idle", "1"))
    assert ledger_events(store_url) == ledger_events(source)
    project(source)
    project(store_url)
    assert projections(store_url) == projections(source)

    # Continue later from the position printed: nothing new, nothing sent.
    assert export(source, broker.bootstrap, "--topic", "moments.replay", "--after",
                  str(summary["position"]))["sent"] == 0


def test_export_one_tenant(broker: Broker, tmp_path: Path, golden_path: Path) -> None:
    source = str(tmp_path / "source.db")
    lines = lines_of(golden_path)
    import_lines(source, lines)
    summary = export(source, broker.bootstrap, "--topic", "acme.replay", "--tenant", "acme",
                     "--partitions", "2")
    assert 0 < summary["sent"] < summary["read"] == 35
    messages = read_topic(broker.bootstrap, "acme.replay")
    assert len(messages) == summary["sent"]
    acme = {orjson.loads(m.value)["moment_id"] for m in messages
            if orjson.loads(m.value).get("tenant") == "acme"}
    for message in messages:
        wire = orjson.loads(message.value)
        assert wire.get("tenant", "acme") == "acme" and wire["moment_id"] in acme
