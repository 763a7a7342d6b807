"""GET /v1/alerts is scoped to the token's tenant; /metrics counts the outbox (SPEC §3.6)."""

from __future__ import annotations

import time

from alert_support import S, make_alert
from http_support import api

from mot.service.alerting import Outcome


def test_alerts_over_http_are_the_tokens_tenants_and_metrics_count_failures(store_url: str) -> None:
    acme, acme_later, globex = make_alert(1), make_alert(2, "stop_asking"), make_alert(3, tenant="globex")
    with api(store_url) as client:
        outbox = client.services.alert_outbox
        outbox.raise_alerts([acme, acme_later, globex])
        now = int(time.time() * S)
        outbox.enqueue("hook", lambda a: True, 10)
        claimed = outbox.claim(["hook"], "me", now, 60 * S, 10)
        outbox.settle("me", [Outcome("hook", c.stored.alert.alert_id,
                                     "failed" if c.stored.alert.tenant == "globex" else "delivered",
                                     1, now, "HTTP 410" if c.stored.alert.tenant == "globex" else None,
                                     now) for c in claimed])
        mine = client.get("acme", "/v1/alerts").json()
        assert [a["alert_id"] for a in mine] == [acme.alert_id, acme_later.alert_id]
        assert mine[0]["deliveries"] == [{"destination": "hook", "state": "delivered",
                                          "attempts": 1, "error": None}]
        assert [a["rule"] for a in client.get("acme", "/v1/alerts", rule="stop_asking").json()] == [
            "stop_asking"]
        assert client.get("acme", "/v1/alerts", failed="true").json() == []
        theirs = client.get("globex", "/v1/alerts", failed="true").json()
        assert [a["alert_id"] for a in theirs] == [globex.alert_id]
        assert client.get("acme", "/v1/alerts", rule="nonsense").status_code == 422
        assert client.client.get("/v1/alerts").status_code == 401
        metrics = client.client.get("/metrics").text
        assert "mot_alerts_raised 3.0" in metrics
        assert 'mot_alert_deliveries{state="failed"} 1.0' in metrics
        assert 'mot_alert_deliveries{state="delivered"} 2.0' in metrics
