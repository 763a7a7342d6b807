"""Alerts to Kafka, keyed by alert id, against the real Kafka-protocol broker (Tansu)."""

from __future__ import annotations

import json
from pathlib import Path

from alert_support import make_alert
from cli_support import mot
from kafka_support import Broker, broker, read_topic

from mot.bootstrap import open_store

__all__ = ["broker"]


def test_alerts_go_to_a_topic_keyed_by_alert_id_and_a_broker_down_is_retried(
        tmp_path: Path, broker: Broker) -> None:
    store = str(tmp_path / "mot.db")
    config = tmp_path / "mot.toml"
    config.write_text(f'[alerts.kafka]\ntopic = "mot.alerts"\nbootstrap = "{broker.bootstrap}"\n'
                      'rules = ["detractor", "stop_asking"]\n')
    alerts = [make_alert(1), make_alert(2, "stop_asking"), make_alert(3, "negative_amplification")]
    with open_store(store) as services:
        services.alert_outbox.raise_alerts(alerts)
    result = mot(store, "alerts", "deliver", "--config", config)
    assert "delivered 2," in result.stderr
    records = read_topic(broker.bootstrap, "mot.alerts")
    assert [r.key.decode() for r in records] == [alerts[0].alert_id, alerts[1].alert_id]
    assert [json.loads(r.value)["rule"] for r in records] == ["detractor", "stop_asking"]
    assert dict(records[0].headers)["mot-alert-id"] == alerts[0].alert_id.encode()
    # Nothing is sent twice; with the broker gone, a new alert waits and is retried.
    broker.stop()
    with open_store(store) as services:
        services.alert_outbox.raise_alerts([make_alert(4)])
    down = mot(store, "alerts", "deliver", "--config", config, "--backoff", "0.01")
    assert "retrying 1" in down.stderr
    listed = json.loads(mot(store, "alerts", "list", "--format", "json").stdout)
    assert listed[-1]["deliveries"][0]["state"] == "pending"
    assert listed[-1]["deliveries"][0]["error"].startswith("kafka:")
