"""The alerts outbox in memory (`mot.service.alerting.AlertOutbox`), for the in-memory store:
the same contract as adapters/stores/alert_outbox.py, tested by the same suite."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, replace

from mot.projections.alerts import Alert
from mot.service.alerting import (
    AlertQuery,
    Claimed,
    OpenRequest,
    OutboxCounts,
    Outcome,
    StoredAlert,
)


@dataclass(slots=True)
class _Delivery:
    seq: int
    state: str = "pending"
    attempts: int = 0
    due_us: int = 0
    lease_owner: str | None = None
    lease_until_us: int | None = None
    error: str | None = None


class MemoryAlertOutbox:
    def __init__(self, requests: Callable[[], Iterable[OpenRequest]] = tuple,
                 url: Callable[[str, str], str | None] = lambda tenant, moment_id: None) -> None:
        self.requests = requests  # the live projections' open requests
        self.url = url  # a current moment's url, by (tenant, moment id), as the SQL outbox joins it
        self._lock = threading.RLock()
        self._alerts: dict[str, StoredAlert] = {}
        self._cursors: dict[str, int] = {}
        self._deliveries: dict[tuple[str, str], _Delivery] = {}

    def raise_alerts(self, alerts: Sequence[Alert]) -> int:
        new = 0
        with self._lock:
            for a in alerts:
                if a.alert_id not in self._alerts:
                    self._alerts[a.alert_id] = StoredAlert(a, len(self._alerts) + 1, None)
                    new += 1
        return new

    def alerts(self, query: AlertQuery) -> list[StoredAlert]:
        with self._lock:
            found = [s for s in self._alerts.values()
                     if (query.tenant is None or s.alert.tenant == query.tenant)
                     and (query.rule is None or s.alert.rule == query.rule)
                     and (query.since_us is None or s.alert.raised_us >= query.since_us)
                     and (query.alert_id is None or s.alert.alert_id == query.alert_id)
                     and (not query.failed or any(
                         d.state == "failed" for (_, a), d in self._deliveries.items()
                         if a == s.alert.alert_id))]
            found = found[:query.limit] if query.limit is not None else found
            return [self._with_url(s)._replace(deliveries=tuple(
                (name, d.state, d.attempts, d.error)
                for (name, a), d in sorted(self._deliveries.items()) if a == s.alert.alert_id))
                for s in found]

    def ack(self, alert_id: str, at_us: int, tenant: str | None = None) -> StoredAlert | None:
        with self._lock:
            s = self._alerts.get(alert_id)
            if s is None or (tenant is not None and s.alert.tenant != tenant):
                return None
            if s.acked_us is None:
                s = self._alerts[alert_id] = s._replace(acked_us=at_us)
            for (_, a), d in self._deliveries.items():
                if a == alert_id and d.state in ("pending", "failed"):
                    d.state, d.lease_owner, d.lease_until_us = "acked", None, None
            return self._with_url(s)

    def _with_url(self, s: StoredAlert) -> StoredAlert:
        url = self.url(s.alert.tenant, s.alert.moment_id)
        return s if url is None else s._replace(alert=replace(s.alert, url=url))

    def counts(self, tenant: str | None = None) -> OutboxCounts:
        with self._lock:
            states = [d.state for (_, a), d in self._deliveries.items()
                      if tenant in (None, self._alerts[a].alert.tenant)]
            alerts = sum(1 for s in self._alerts.values() if tenant in (None, s.alert.tenant))
            return OutboxCounts(alerts, states.count("pending"),
                                states.count("delivered"), states.count("failed"))

    def enqueue(self, destination: str, wants: Callable[[Alert], bool], limit: int,
                new_since_us: int | None = None) -> tuple[int, int]:
        with self._lock:
            if destination not in self._cursors:
                self._cursors[destination] = max(
                    (s.seq for s in self._alerts.values()
                     if new_since_us is not None and s.alert.raised_us < new_since_us), default=0)
            cursor = self._cursors[destination]
            rows = sorted((s for s in self._alerts.values() if s.seq > cursor),
                          key=lambda s: s.seq)[:limit]
            queued = 0
            for s in rows:
                key = (destination, s.alert.alert_id)
                if s.acked_us is None and wants(s.alert) and key not in self._deliveries:
                    self._deliveries[key] = _Delivery(s.seq, due_us=s.alert.raised_us)
                    queued += 1
            if rows:
                self._cursors[destination] = rows[-1].seq
            return len(rows), queued

    def claim(self, destinations: Collection[str], owner: str, now_us: int, lease_us: int,
              limit: int) -> list[Claimed]:
        with self._lock:
            due = sorted(((d.due_us, d.seq, key) for key, d in self._deliveries.items()
                          if key[0] in destinations and d.state == "pending" and d.due_us <= now_us
                          and (d.lease_until_us is None or d.lease_until_us < now_us)))[:limit]
            claimed = []
            for _, _, key in due:
                d = self._deliveries[key]
                d.lease_owner, d.lease_until_us = owner, now_us + lease_us
                claimed.append(Claimed(key[0], d.attempts, self._with_url(self._alerts[key[1]])))
            return claimed

    def settle(self, owner: str, outcomes: Iterable[Outcome]) -> int:
        count = 0
        with self._lock:
            for o in outcomes:
                d = self._deliveries.get((o.destination, o.alert_id))
                count += 1
                if d is None or d.lease_owner != owner:
                    continue
                d.state, d.attempts, d.due_us, d.error = o.state, o.attempts, o.due_us, o.error
                d.lease_owner = d.lease_until_us = None
        return count

    def retry_failed(self, destinations: Collection[str], now_us: int) -> int:
        count = 0
        with self._lock:
            for (name, _), d in self._deliveries.items():
                if name in destinations and d.state == "failed":
                    d.state, d.attempts, d.due_us = "pending", 0, now_us
                    d.lease_owner = d.lease_until_us = None
                    count += 1
        return count

    def open_requests(self, since_us: int, until_us: int) -> list[OpenRequest]:
        return sorted((r for r in self.requests() if since_us <= r.occurred_us <= until_us),
                      key=lambda r: (r.occurred_us, r.tenant, r.request_moment_id))
