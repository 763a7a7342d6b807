"""Alerts out of the outbox: list, acknowledge, and deliver at least once (SPEC §3.6).

The engine raises alerts into the outbox in the transaction of the projection change
that causes them; this use case sends them to every configured destination. Each
(alert, destination) is queued once, then claimed with a lease in the database, so
two deliverers never send one alert at the same time and a deliverer killed
mid-batch leaves only its batch to be sent again when the lease ends. Each destination
claims, sends and settles its own batches, so one that never answers delays only its own
alerts (no tenant's dead receiver slows another's). A 2xx (or
the broker's acknowledgement) delivers; what may pass (a timeout, a lost
connection, a 5xx, 408, 429) is tried again after an exponential backoff with
jitter; what will not pass (another 4xx) or too many failures moves it to the
failed list, from which `retry_failed` sends it again.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import queue
import random
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Protocol

from mot.domain.timefmt import micros_to_text
from mot.projections.alerts import DEFAULT_WINDOW_US, Alert
from mot.projections.model import Current

if TYPE_CHECKING:
    from mot.service.alert_config import AlertConfig

SECOND: Final = 1_000_000
QUEUE_PAGE: Final = 5000
CHANGED_CHECK_S: Final = 1.0  # the overdue check after the projections changed, at most this often
OVERDUE_CHECK_S: Final = 30  # the overdue check's interval unless mot.toml sets [alerts] overdue_check


@dataclass(frozen=True, slots=True)
class AlertQuery:
    tenant: str | None = None
    rule: str | None = None
    since_us: int | None = None
    failed: bool = False
    alert_id: str | None = None
    limit: int | None = None


Delivery = tuple[str, str, int, str | None]
"""(destination, state, attempts, last error)"""


class StoredAlert(NamedTuple):
    alert: Alert
    seq: int
    acked_us: int | None
    deliveries: tuple[Delivery, ...] = ()


class Claimed(NamedTuple):
    """A delivery leased to one deliverer."""

    destination: str
    attempts: int  # before this one
    stored: StoredAlert


class Outcome(NamedTuple):
    destination: str
    alert_id: str
    state: str  # pending (due again at due_us), delivered, failed
    attempts: int
    due_us: int
    error: str | None
    at_us: int


class OutboxCounts(NamedTuple):
    alerts: int
    pending: int
    delivered: int
    failed: int


class OpenRequest(NamedTuple):
    """A request of SPEC §3.5 with no response yet, as the overdue check reads it."""

    tenant: str
    request_moment_id: str
    customer_id: str
    kind: str
    channel: str
    function: str
    occurred_us: int
    actor: str | None


class AlertOutbox(Protocol):
    """The outbox and its delivery state (adapters/stores/alert_outbox.py, memory.py)."""

    def raise_alerts(self, alerts: Sequence[Alert]) -> int:
        """Insert the alerts not raised before (by id); return how many were new."""
        ...
    def alerts(self, query: AlertQuery) -> list[StoredAlert]: ...
    def ack(self, alert_id: str, at_us: int, tenant: str | None = None) -> StoredAlert | None: ...
    def counts(self, tenant: str | None = None) -> OutboxCounts:
        """The alerts raised and their deliveries by state (of `tenant` only, when given)."""
    def enqueue(self, destination: str, wants: Callable[[Alert], bool], limit: int,
                new_since_us: int | None = None) -> tuple[int, int]:
        """Queue for `destination` the next alerts (at most `limit`) raised after its cursor
        that it `wants`; return how many were read and how many queued. A destination seen for
        the first time starts after the alerts raised before `new_since_us` (None: from the
        first alert)."""
        ...
    def claim(self, destinations: Collection[str], owner: str, now_us: int, lease_us: int,
              limit: int) -> list[Claimed]: ...
    def settle(self, owner: str, outcomes: Iterable[Outcome]) -> int: ...
    def retry_failed(self, destinations: Collection[str], now_us: int) -> int: ...
    def open_requests(self, since_us: int, until_us: int) -> list[OpenRequest]:
        """The live projections' open requests that occurred in [since_us, until_us]."""
        ...


class Sent(NamedTuple):
    """What one attempt to deliver one alert to one destination came to."""

    ok: bool
    retry: bool = True  # when not ok: whether trying again may pass
    error: str | None = None


class Destination(Protocol):
    """Where alerts go: a webhook, a Kafka topic (adapters/alerts/)."""

    name: str

    def wants(self, alert: Alert) -> bool: ...
    def send(self, alerts: Sequence[Alert]) -> list[Sent]:
        """Try to deliver each alert once; one result per alert, in order."""
        ...
    def close(self) -> None: ...


# -- what a destination receives -------------------------------------------------------

def alert_record(alert: Alert) -> dict[str, Any]:
    """The alert as JSON receivers and `mot alerts list` see it: the common fields (`url`: the
    moment's, where it has one), then the rule's own (from/to; unanswered_asks, ask_type;
    cascade_reach, trigger_*; overdue_seconds, target_seconds)."""
    record: dict[str, Any] = {
        "alert_id": alert.alert_id, "rule": alert.rule, "tenant": alert.tenant,
        "customer_id": alert.customer_id, "customer_ids": list(alert.customer_ids),
        "moment_id": alert.moment_id, "occurred_at": micros_to_text(alert.occurred_us),
        "raised_at": micros_to_text(alert.raised_us), "function": alert.function,
        "actor": alert.actor, "channel": alert.channel, "url": alert.url,
    }
    record.update(alert.details)
    return record


def stored_record(stored: StoredAlert) -> dict[str, Any]:
    """`alert_record` with the outbox's own state (acknowledged, per destination)."""
    record = alert_record(stored.alert)
    record["acked_at"] = None if stored.acked_us is None else micros_to_text(stored.acked_us)
    record["deliveries"] = [{"destination": d, "state": s, "attempts": n, "error": e}
                            for d, s, n, e in stored.deliveries]
    return record


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`X-Mot-Signature`: sha256=HEX(HMAC-SHA256(secret, timestamp + "." + body))."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{max(0, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    if seconds < 48 * 3600:
        return f"{round(seconds / 3600)} h"
    return f"{round(seconds / 86400)} d"


def _team(function: object, actor: object, what: object) -> str:
    owner = f"{function}'" if str(function).endswith("s") else f"{function}'s"
    text = f"{owner} {what}" if function else str(what)
    return f"{text} by {actor}" if actor else text


def slack_text(alert: Alert) -> str:
    """One readable sentence: "acme · hubspot:501 became a detractor 3 h after logistics'
    answer by dana · twitter · <https://x.com/…|x.com/…>", the moment's link last (its id
    where it has no url). Slack reads `&`, `<` and `>` as markup: the values are escaped."""
    d = {k: _slack_escape(v) if isinstance(v, str) else v for k, v in alert.details}
    alert = replace(alert, tenant=_slack_escape(alert.tenant),
                    customer_id=_slack_escape(alert.customer_id),
                    function=_slack_escape(alert.function), channel=_slack_escape(alert.channel),
                    actor=None if alert.actor is None else _slack_escape(alert.actor))
    head = f"{alert.tenant} · {alert.customer_id}"
    if alert.rule == "detractor":
        what = f"became a detractor ({d.get('from')} → detractor) on {alert.channel}"
        if d.get("trigger_function") or d.get("trigger_actor"):
            delay = d.get("delay_seconds")
            when = f" {_ago(float(delay))}" if isinstance(delay, int) else ""
            what = (f"became a detractor{when} after "
                    f"{_team(d.get('trigger_function'), d.get('trigger_actor'), 'answer')}"
                    f" · {alert.channel}")
    elif alert.rule == "stop_asking":
        ask = f"{d.get('ask_type')} ask" if d.get("ask_type") else "ask"
        what = (f"has {d.get('unanswered_asks')} unanswered asks: stop asking"
                f" (last: {_team(alert.function, alert.actor, ask)} on {alert.channel})")
    elif alert.rule == "negative_amplification":
        what = f"posted negatively on {alert.channel}, reaching {d.get('cascade_reach'):,}"
        if d.get("trigger_function") or d.get("trigger_actor"):
            what += " after " + _team(d.get("trigger_function"), d.get("trigger_actor"), "answer")
    else:
        overdue = d.get("overdue_seconds")
        late = f" {_ago(float(overdue))} past" if isinstance(overdue, int) else " past"
        kind = d.get("kind") or "request"
        what = (f"waits for an answer: {_team(alert.function, None, kind)} on {alert.channel}"
                f" is{late} its first-response target")
    return f"{head} {what} · {_slack_link(alert.url) if alert.url else 'moment ' + alert.moment_id}"


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


SLACK_LINK_CHARS: Final = 40  # of a url shown in a Slack sentence; the link keeps all of it


def _slack_link(url: str) -> str:
    """`<url|shown>`: the url without its scheme, cut to `SLACK_LINK_CHARS` with "…"."""
    shown = url.split("://", 1)[-1]
    if len(shown) > SLACK_LINK_CHARS:
        shown = shown[:SLACK_LINK_CHARS - 1] + "…"
    return f"<{_slack_escape(url).replace('|', '%7C')}|{_slack_escape(shown)}>"


def slack_payload(alert: Alert) -> dict[str, Any]:
    """Slack's incoming-webhook shape: `text`, and the same as a section block."""
    text = slack_text(alert)
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}


# -- delivering ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Backoff:
    """When a failed delivery is tried again: base · 2^(attempts-1), at most `cap`, times a
    random factor in [0.5, 1.5) so that many failed deliveries do not come back at once."""

    base_s: float = 2.0
    cap_s: float = 600.0
    max_attempts: int = 12

    def delay_us(self, attempts: int, rng: random.Random) -> int:
        delay = min(self.cap_s, self.base_s * 2 ** max(0, attempts - 1))
        return int(delay * rng.uniform(0.5, 1.5) * SECOND)


class Round(NamedTuple):
    """What one delivery round did."""

    queued: int
    delivered: int
    retrying: int
    failed: int


def owner_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


class Deliverer:
    """Sends what the outbox holds to each destination, at least once."""

    def __init__(self, outbox: AlertOutbox, destinations: Sequence[Destination], *,
                 backoff: Backoff = Backoff(), lease_s: float = 60.0, batch: int = 200,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None,
                 history_us: int = DEFAULT_WINDOW_US) -> None:
        self.outbox = outbox
        # A destination added to mot.toml later gets the alerts raised within this long (the
        # alerts' window: those still fresh enough to act on) before a deliverer first saw
        # it, and every one after; never the whole history.
        self.history_us = history_us
        self.destinations = {d.name: d for d in destinations}
        self.backoff = backoff
        self.lease_us = int(lease_s * SECOND)
        self.batch = batch
        self.clock = clock
        self.rng = rng or random.Random()
        self.owner = owner_name()
        # Outcomes of a batch sent but not yet recorded (the store went away in between):
        # recorded first on the next round, so a deliverer that outlives an outage does not
        # send that batch again once its lease ends.
        self.unsettled: list[Outcome] = []
        # The batch each destination has out (its alerts and, once sent, their results), and
        # the destinations whose batch is done, in the order they finished.
        self.sending: dict[str, tuple[list[Claimed], list[list[Sent]]]] = {}
        self.done: queue.Queue[str] = queue.Queue()
        self.finished = threading.Event()  # a batch is done since deliver_once last looked

    def now_us(self) -> int:
        return int(self.clock() * SECOND)

    def queue(self) -> int:
        """Queue for each destination the alerts raised since it last looked."""
        return sum(self._queue(name) for name in self.destinations)

    def _queue(self, name: str) -> int:
        queued, wants = 0, self.destinations[name].wants
        while True:
            read, count = self.outbox.enqueue(name, wants, QUEUE_PAGE,
                                              self.now_us() - self.history_us)
            queued += count
            if read < QUEUE_PAGE:
                return queued

    def retry_failed(self) -> int:
        return self.outbox.retry_failed(list(self.destinations), self.now_us())

    def deliver_once(self, *, wait: bool = True) -> Round:
        """Queue what is new, then send what is due, each destination on its own: one whose
        batch is done queues and claims its next while another's is still on the wire, so a
        receiver that never answers delays its own alerts only, not those of the others
        (another tenant's, say). `wait`: until no destination has anything due; without it,
        return once each idle destination has its next batch out (`mot alerts deliver
        --follow` calls again after its poll, and each call records the batches done)."""
        self.finished.clear()
        if self.unsettled:
            self.outbox.settle(self.owner, self.unsettled)
            self.unsettled = []
        queued = delivered = retrying = failed = 0
        idle = [name for name in self.destinations if name not in self.sending]
        while True:
            for name in idle:
                queued += self._queue(name)
                claimed = self.outbox.claim([name], self.owner, self.now_us(), self.lease_us,
                                            self.batch)
                if claimed:
                    self._start(name, claimed)
            if not self.sending:
                break
            try:
                name = self.done.get(timeout=None if wait else 0)
            except queue.Empty:
                break
            idle = [name]
            outcomes = self._outcomes(name, *self.sending.pop(name))
            self.unsettled = outcomes  # recorded on the next call if the store is away now
            self.outbox.settle(self.owner, outcomes)
            self.unsettled = []
            delivered += sum(o.state == "delivered" for o in outcomes)
            retrying += sum(o.state == "pending" for o in outcomes)
            failed += sum(o.state == "failed" for o in outcomes)
        return Round(queued, delivered, retrying, failed)

    def pause(self, seconds: float) -> None:
        """Sleep `seconds`, or until a batch out is done: its outcomes are then recorded (by
        the next `deliver_once`) at once rather than after the poll."""
        self.finished.wait(seconds)

    def _start(self, name: str, batch: list[Claimed]) -> None:
        """Send `batch` to `name` in a thread of its own (the destination's own pool sends
        its POSTs): one batch out per destination at a time."""
        results: list[list[Sent]] = []

        def send() -> None:
            try:
                results.append(self.destinations[name].send([c.stored.alert for c in batch]))
            except Exception as error:  # a destination that breaks fails its batch, not the run
                results.append([Sent(False, True, f"{type(error).__name__}: {error}")]
                               * len(batch))
            finally:
                self.done.put(name)
                self.finished.set()

        self.sending[name] = (batch, results)
        threading.Thread(target=send, name=f"mot-deliver-{name}", daemon=True).start()

    def _outcomes(self, name: str, batch: list[Claimed], results: list[list[Sent]]
                  ) -> list[Outcome]:
        now = self.now_us()
        outcomes = []
        for c, sent in zip(batch, results[0], strict=True):
            attempts = c.attempts + 1
            if sent.ok:
                state, due = "delivered", now
            elif sent.retry and attempts < self.backoff.max_attempts:
                state, due = "pending", now + self.backoff.delay_us(attempts, self.rng)
            else:
                state, due = "failed", now
            outcomes.append(Outcome(name, c.stored.alert.alert_id, state, attempts, due,
                                    sent.error, now))
        return outcomes

    def close(self) -> None:
        """Wait for the batches still out and record them (a receiver that never answers
        holds this for its timeout), then close the destinations."""
        try:
            while self.sending:
                name = self.done.get()
                outcomes = self._outcomes(name, *self.sending.pop(name))
                self.outbox.settle(self.owner, [*self.unsettled, *outcomes])
                self.unsettled = []
        finally:
            for d in self.destinations.values():
                d.close()


class OverdueCheck:
    """Raises `overdue` for each open request past its first-response target (SPEC §3.6): time,
    not a new moment, makes a request overdue, so this runs every `every_s` (mot.toml's
    `[alerts] overdue_check`, default 30 s) in the long-running commands (`mot project
    --follow`, `mot alerts deliver --follow`, `mot serve`). Each request raises once: the
    alert's id is its identity."""

    def __init__(self, outbox: AlertOutbox, config: Callable[[], AlertConfig], *,
                 every_s: float | None = None, clock: Callable[[], float] = time.time,
                 warn: Callable[[str], None] | None = None) -> None:
        self.outbox = outbox
        self.config = config
        self.warn = warn
        self._warned: set[str] = set()  # each line once: mot.toml is read again at each run
        self._every_s = every_s  # None: mot.toml's `[alerts] overdue_check`, read at each run
        self.every_s = float(every_s or OVERDUE_CHECK_S)
        self.clock = clock
        self._last: float | None = None
        self._changed = False

    def changed(self) -> None:
        """The projections changed (a request may have arrived already late): check again
        soon, rather than after the whole interval."""
        self._changed = True

    def due(self) -> bool:
        if self._last is None:
            return True
        elapsed = self.clock() - self._last
        return elapsed >= self.every_s or (self._changed and elapsed >= CHANGED_CHECK_S)

    def maybe_run(self) -> int:
        """`run()` when the last one is `every_s` old; how many alerts it raised."""
        return self.run() if self.due() else 0

    def run(self) -> int:
        from mot.projections.alerts import overdue_cause, raise_alerts

        self._last, self._changed = self.clock(), False
        config = self.config()
        if self._every_s is None:
            self.every_s = float(config.overdue_check_s)
        targets = config.targets
        if not targets.configured:
            return 0
        now = int(self._last * SECOND)
        tables = [t for t in (targets.first_response, *targets.tenants.values()) if t]
        shortest = min(min(t.values()) for t in tables)  # no request is overdue sooner
        self._say_never_overdue(config)
        # A request raises while it is fresh (`overdue_cause`): occurred within the window.
        since = now - config.policy.longest_window_us
        causes, moments = [], {}
        for r in self.outbox.open_requests(since, now - shortest * SECOND):
            cause = overdue_cause(r.tenant, r.customer_id, r.request_moment_id, r.occurred_us,
                                  r.kind, r.function,
                                  targets.first_response_for(r.tenant).get(r.function), now,
                                  config.policy.window(r.tenant))
            if cause is not None:
                causes.append(cause)
                moments[r.request_moment_id] = Current(
                    r.request_moment_id, r.tenant, r.customer_id, r.occurred_us, "inbound", r.kind,
                    r.function, r.channel, r.actor, None, None, 0, None, None)
        if not causes:
            return 0
        return self.outbox.raise_alerts(raise_alerts(causes, moments, {}, now))

    def _say_never_overdue(self, config: AlertConfig) -> None:
        """Warn once of each target that can never raise `overdue` (SPEC §3.6)."""
        from mot.projections.alerts import targets_never_overdue

        if self.warn is None:
            return
        targets, policy = config.targets, config.policy
        for tenant in sorted({"", *targets.tenants, *(name for name, _, _ in policy.tenants)}):
            # "" is the defaults: no tenant is named so, so these give the defaults' own.
            window_us = policy.window(tenant)
            for function in targets_never_overdue(targets.first_response_for(tenant), window_us):
                where = f"tenant {tenant}'s" if tenant else "the"
                line = (f"warning: {where} first-response target for {function} is as long as "
                        f"its alert window ({window_us // SECOND // 3600} h) or longer: a request "
                        "raises `overdue` only while it occurred within the window (SPEC §3.6), "
                        "so these never will; set [alerts] window longer than the target")
                if line not in self._warned:
                    self._warned.add(line)
                    self.warn(line)


class AlertService:
    """What `mot alerts` and GET /v1/alerts do."""

    def __init__(self, outbox: AlertOutbox) -> None:
        self.outbox = outbox

    def find(self, query: AlertQuery) -> list[StoredAlert]:
        return self.outbox.alerts(query)

    def ack(self, alert_id: str, tenant: str | None = None) -> StoredAlert | None:
        """Acknowledge an alert (of `tenant` only, when given); the alert as it now stands,
        with each destination's delivery, or None when there is no such alert."""
        if self.outbox.ack(alert_id, int(time.time() * SECOND), tenant) is None:
            return None
        [stored] = self.outbox.alerts(AlertQuery(tenant, alert_id=alert_id))
        return stored

    def counts(self, tenant: str | None = None) -> OutboxCounts:
        return self.outbox.counts(tenant)
