"""Where alerts are delivered: signed webhooks (JSON or Slack's shape) over HTTP, and a
Kafka topic keyed by alert id (`mot.service.alerting.Destination`)."""

from __future__ import annotations

import http.client
import ssl
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson

from mot.projections.alerts import Alert
from mot.service.alert_config import AlertConfig, Filters, KafkaAlertSettings, WebhookSettings
from mot.service.alerting import Destination, Sent, alert_record, signature, slack_payload

if TYPE_CHECKING:

    from mot.adapters.kafka.client import KafkaSink

RETRIED_4XX = frozenset({408, 429})
_QUOTED = 200  # bytes of a failed answer quoted in its reason


class Webhook:
    """POSTs each alert to a URL, signed: `X-Mot-Alert-Id`, `X-Mot-Timestamp` (Unix seconds),
    `X-Mot-Signature: sha256=HEX(HMAC-SHA256(secret, timestamp + "." + body))`.

    The standard library's `http.client`, one kept-alive connection per sending thread:
    bench/alerts_bench.py measured it sending more POSTs a second than httpx's pooled
    client on the same receiver (bench/NOTES.md), and the sending is the deliverer's work.
    """

    def __init__(self, settings: WebhookSettings, *, timeout_s: float = 10.0,
                 concurrency: int = 16) -> None:
        self.name = settings.name
        self.settings = settings
        self.filters: Filters = settings.filters
        self.timeout_s = timeout_s
        parts = urlsplit(settings.url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.local = threading.local()
        self.opened: list[http.client.HTTPConnection] = []
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(concurrency, thread_name_prefix="mot-webhook")

    def wants(self, alert: Alert) -> bool:
        return self.filters.wants(alert.rule, alert.tenant)

    def body(self, alert: Alert) -> bytes:
        payload: Any = (slack_payload(alert) if self.settings.format == "slack"
                        else alert_record(alert))
        return orjson.dumps(payload)

    def send(self, alerts: Sequence[Alert]) -> list[Sent]:
        return list(self.pool.map(self._post, alerts))

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection, and whether it was used before (the server may have
        closed a kept-alive one meanwhile)."""
        connection: http.client.HTTPConnection | None = getattr(self.local, "connection", None)
        if connection is not None:
            return connection, True
        if self.https:
            connection = http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout_s, context=ssl.create_default_context())
        else:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        self.local.connection = connection
        with self.lock:
            self.opened.append(connection)
        return connection, False

    def _drop(self, connection: http.client.HTTPConnection) -> None:
        connection.close()
        self.local.connection = None

    def _post(self, alert: Alert) -> Sent:
        body = self.body(alert)
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "User-Agent": "mot-alerts",
                   "X-Mot-Alert-Id": alert.alert_id, "X-Mot-Timestamp": timestamp}
        if self.settings.secret is not None:
            headers["X-Mot-Signature"] = signature(self.settings.secret, timestamp, body)
        while True:
            connection, reused = self._connection()
            deadline = time.monotonic() + self.timeout_s
            try:
                connection.request("POST", self.target, body=body, headers=headers)
                response = connection.getresponse()
                text = self._answer(response, deadline)
            except TimeoutError:
                self._drop(connection)
                return Sent(False, True, f"timed out after {self.timeout_s:g} s")
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as error:
                self._drop(connection)
                if reused:
                    continue  # a kept-alive connection the server had closed: once on a new one
                return Sent(False, True, f"{type(error).__name__}: {error}")
            except (OSError, http.client.HTTPException) as error:
                self._drop(connection)
                return Sent(False, True, f"{type(error).__name__}: {error}")
            if response.will_close:
                self._drop(connection)
            break
        status = response.status
        if 200 <= status < 300:
            return Sent(True)
        reason = f"HTTP {status}: {text.decode(errors='replace')}"
        return Sent(False, status >= 500 or status in RETRIED_4XX, reason)

    @staticmethod
    def _answer(response: http.client.HTTPResponse, deadline: float) -> bytes:
        """The start of the answer's body (what a failure's reason quotes), the whole of it
        read by `deadline`. The socket's timeout bounds each read only: a receiver sending a
        few bytes a second of a body it said was a gigabyte held the round, and every
        destination's alerts with it, for as long as it liked."""
        start = b""
        while chunk := response.read1(65536):
            if len(start) < _QUOTED:
                start += chunk[: _QUOTED - len(start)]
            if time.monotonic() > deadline:
                raise TimeoutError
        # read1 leaves a finished answer open, and http.client refuses the next request on
        # its connection while it is: closed, as read() closes it, the connection is kept.
        response.close()
        return start

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        with self.lock:
            for connection in self.opened:
                connection.close()


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
