"""Where alerts are delivered: signed webhooks (JSON or Slack's shape) over httpx, and a
Kafka topic keyed by alert id (`mot.service.alerting.Destination`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import orjson

from mot.projections.alerts import Alert
from mot.service.alert_config import AlertConfig, Filters, KafkaAlertSettings, WebhookSettings
from mot.service.alerting import Destination, Sent, alert_record, signature, slack_payload

if TYPE_CHECKING:

    from mot.adapters.kafka.client import KafkaSink

RETRIED_4XX = frozenset({408, 429})


class Webhook:
    """POSTs each alert to a URL, signed: `X-Mot-Alert-Id`, `X-Mot-Timestamp` (Unix seconds),
    `X-Mot-Signature: sha256=HEX(HMAC-SHA256(secret, timestamp + "." + body))`."""

    def __init__(self, settings: WebhookSettings, *, timeout_s: float = 10.0,
                 concurrency: int = 16) -> None:
        import httpx

        self.name = settings.name
        self.settings = settings
        self.filters: Filters = settings.filters
        self.client = httpx.Client(
            timeout=timeout_s, follow_redirects=False,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            headers={"User-Agent": "mot-alerts", "Content-Type": "application/json"})
        self.pool = ThreadPoolExecutor(concurrency, thread_name_prefix="mot-webhook")

    def wants(self, alert: Alert) -> bool:
        return self.filters.wants(alert.rule, alert.tenant)

    def body(self, alert: Alert) -> bytes:
        payload: Any = (slack_payload(alert) if self.settings.format == "slack"
                        else alert_record(alert))
        return orjson.dumps(payload)

    def send(self, alerts: Sequence[Alert]) -> list[Sent]:
        return list(self.pool.map(self._post, alerts))

    def _post(self, alert: Alert) -> Sent:
        import httpx

        body = self.body(alert)
        timestamp = str(int(time.time()))
        headers = {"X-Mot-Alert-Id": alert.alert_id, "X-Mot-Timestamp": timestamp}
        if self.settings.secret is not None:
            headers["X-Mot-Signature"] = signature(self.settings.secret, timestamp, body)
        try:
            response = self.client.post(self.settings.url, content=body, headers=headers)
        except httpx.TimeoutException as error:
            return Sent(False, True, f"timed out: {error or type(error).__name__}")
        except httpx.TransportError as error:
            return Sent(False, True, f"{type(error).__name__}: {error}")
        status = response.status_code
        if 200 <= status < 300:
            return Sent(True)
        reason = f"HTTP {status}: {response.text[:200]}"
        return Sent(False, status >= 500 or status in RETRIED_4XX, reason)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.client.close()


class KafkaTopic:
    """Writes each alert's JSON to a topic, keyed by its alert id (a compacted topic keeps one
    record per alert); delivered once the broker acknowledged the whole batch."""

    def __init__(self, settings: KafkaAlertSettings) -> None:
        self.name = settings.name
        self.settings = settings
        self.filters = settings.filters
        self.sink: KafkaSink | None = None

    def wants(self, alert: Alert) -> bool:
        return self.filters.wants(alert.rule, alert.tenant)

    def send(self, alerts: Sequence[Alert]) -> list[Sent]:
        from mot.adapters.kafka.client import KafkaSink, ensure_topics
        from mot.service.streaming import Outgoing, StreamError

        try:
            if self.sink is None:
                ensure_topics(self.settings.bootstrap, [self.settings.topic], timeout_ms=10_000)
                self.sink = KafkaSink(self.settings.bootstrap, max_block_ms=10_000,
                                      flush_timeout_s=30.0, bootstrap_timeout_ms=10_000)
            for alert in alerts:
                self.sink.send(Outgoing(self.settings.topic, alert.alert_id.encode(),
                                        orjson.dumps(alert_record(alert)),
                                        (("mot-alert-id", alert.alert_id.encode()),)))
            self.sink.flush()
        except StreamError as error:
            return [Sent(False, True, f"kafka: {error}")] * len(alerts)
        return [Sent(True)] * len(alerts)

    def close(self) -> None:
        if self.sink is not None:
            self.sink.close()


def destinations(config: AlertConfig, *, timeout_s: float = 10.0) -> list[Destination]:
    """The configured destinations, webhooks first."""
    found: list[Destination] = [Webhook(w, timeout_s=timeout_s) for w in config.webhooks]
    if config.kafka is not None:
        found.append(KafkaTopic(config.kafka))
    return found
