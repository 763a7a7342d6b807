"""`/metrics` in the Prometheus text format, with prometheus_client.

One registry per app (tests build several apps in one process). Counters and
histograms are updated as requests are answered; the store's figures (ledger
head, projection position and lag, quarantine size, the store being up) are
read when scraped. No label carries a tenant: `/metrics` is not scoped to one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from mot.domain.timefmt import parse_utc
from mot.service.alerting import OutboxCounts
from mot.service.projecting import Status

CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _StoreCollector:
    """Reads the ledger and projection status at scrape time."""

    def __init__(self, status: Callable[[], Status]) -> None:
        self.status = status

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("mot_store_up", "1 when the store answered this scrape, else 0")
        try:
            status = self.status()
        except Exception:  # a scrape must not fail because the store is down: say so instead
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        for name, help_text, value in (
            ("mot_ledger_head", "Position of the latest event in the ledger", status.head),
            ("mot_projection_position", "Ledger position the projections have applied",
             status.position),
            ("mot_projection_lag", "Events recorded but not yet projected", status.lag),
            ("mot_projection_lag_seconds",
             "Age of the oldest event not yet projected (0 when up to date)", status.lag_seconds),
            ("mot_projection_last_progress_timestamp_seconds",
             "When the live projection last saved a page (Unix time; 0: never)",
             parse_utc(status.last_progress_at).timestamp() if status.last_progress_at else 0.0),
            ("mot_quarantined", "Messages in the quarantine", status.quarantined),
        ):
            gauge = GaugeMetricFamily(name, help_text)
            gauge.add_metric([], value)
            yield gauge


class _AlertCollector:
    """The alerts outbox at scrape time: raised, and deliveries by state (failed ones wait
    for `mot alerts deliver --retry-failed`)."""

    def __init__(self, counts: Callable[[], OutboxCounts]) -> None:
        self.counts = counts

    def collect(self) -> Iterable[Metric]:
        try:
            counts = self.counts()
        except Exception:  # the store's own gauge says it is down
            return
        raised = GaugeMetricFamily("mot_alerts_raised", "Alerts in the outbox")
        raised.add_metric([], counts.alerts)
        yield raised
        deliveries = GaugeMetricFamily("mot_alert_deliveries",
                                       "Alert deliveries by state (pending, delivered, failed)",
                                       labels=["state"])
        for state in ("pending", "delivered", "failed"):
            deliveries.add_metric([state], getattr(counts, state))
        yield deliveries


class Metrics:
    """The app's metrics."""

    def __init__(self, status: Callable[[], Status],
                 alert_counts: Callable[[], OutboxCounts] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter("mot_http_requests", "HTTP requests answered",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("mot_http_request_duration_seconds",
                                 "Time to answer an HTTP request", ["method", "route"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.messages = Counter("mot_ingest_messages", "Messages received over HTTP, by outcome",
                                ["entry", "outcome"], registry=self.registry)
        self.limited = Counter("mot_http_tenant_limited",
                               "Requests refused 429 because their tenant was over one of its "
                               "limits, by limit (never by tenant)", ["limit"],
                               registry=self.registry)
        self.registry.register(_StoreCollector(status))
        if alert_counts is not None:
            self.registry.register(_AlertCollector(alert_counts))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def count_outcomes(self, entry: str, outcomes: Iterable[str]) -> None:
        counts: dict[str, int] = {}
        for outcome in outcomes:
            counts[outcome] = counts.get(outcome, 0) + 1
        for outcome, count in counts.items():
            self.messages.labels(entry, outcome).inc(count)

    def count_limited(self, limit: str) -> None:
        self.limited.labels(limit).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


def route_of(scope: MutableMapping[str, Any]) -> str:
    """The route template that answered (`/v1/moments/{moment_id}`), never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path is not None else "(unmatched)"
