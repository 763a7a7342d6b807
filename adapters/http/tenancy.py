"""Each tenant's share of `mot serve`, so that one tenant's flood slows only that tenant.

- Requests: a token bucket per tenant (`--tenant-rate` a second, up to `--tenant-burst` at
  once); over it, 429 `rate_limited` with Retry-After, the seconds until the next token.
- Reports (`GET /v1/report`, a whole page computed per request): one at a time per tenant
  and `--report-rate` a minute; over it, 429 `report_busy` / `report_rate`.
- Bodies held (ingest.MemoryBudget): at most `--tenant-memory` bytes of one tenant's bodies
  at once, within the shared `--memory-budget`.
- Turns at the store (FairTurns): the ingest threads go round the tenants that wait, one
  chunk each, so another tenant's chunk waits for at most one chunk of each tenant ahead.
- Reads on the thread pool (TenantReads): at most TENANT_READS queries of one tenant run at
  once; its others wait, holding no thread, for its own to finish.

A refusal names the limit and its option, and counts in `/metrics` by limit (no tenant).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:  # imported where used: `mot serve --help` reads this module's defaults
    import anyio

# A backstop above what one server records (the bench's 32 clients send ~150 batches a
# second): fairness between tenants comes from the turns and the memory shares, the rate is a
# tenant's ceiling an operator lowers.
DEFAULT_TENANT_RATE: Final = 1000.0
DEFAULT_TENANT_BURST: Final = 2000
DEFAULT_REPORT_RATE: Final = 12.0  # a minute
# The lowest rates above 0 (no limit): a tenant's next request or report is then at most
# 1,000 s or 10 minutes away. A rate near 0 (`--tenant-rate 1e-300`) answered Retry-After
# in the 10^300 seconds.
LEAST_TENANT_RATE: Final = 0.001
LEAST_REPORT_RATE: Final = 0.1  # a minute
# Reads (queries, persons, alerts, a moment's history, the report) one tenant has running at
# once on the thread pool every request shares (anyio's, 40 threads): 60 concurrent `as_of`
# queries of one tenant took them all, and another tenant's smallest query waited behind them.
TENANT_READS: Final = 4
# Retry-After's largest value: a client told to wait longer takes the server for broken.
RETRY_AFTER_MAX: Final = 3600


class TenantLimited(Exception):
    """A tenant is over one of its own limits (answered 429 with Retry-After)."""

    def __init__(self, code: str, detail: str, retry_after: float, *,
                 unread_body: bool = False) -> None:
        super().__init__(detail)
        self.code = code
        self.retry_after = min(RETRY_AFTER_MAX, max(1, math.ceil(retry_after)))
        # refused before its body was read: the connection closes, the rest may be on the way
        self.unread_body = unread_body


@dataclass(frozen=True, slots=True)
class Quotas:
    """Each tenant's limits (the options of `mot serve`); a rate of 0 is no limit."""

    rate: float = DEFAULT_TENANT_RATE
    burst: int = DEFAULT_TENANT_BURST
    report_rate: float = DEFAULT_REPORT_RATE

    def __post_init__(self) -> None:
        if not (self.rate == 0 or LEAST_TENANT_RATE <= self.rate <= 1e9):
            raise ValueError(f"the tenant rate must be 0 (no limit) or from "
                             f"{LEAST_TENANT_RATE:g} to 1e9 requests a second")
        if not (self.report_rate == 0 or LEAST_REPORT_RATE <= self.report_rate <= 1e9):
            raise ValueError(f"the report rate must be 0 (no limit) or from "
                             f"{LEAST_REPORT_RATE:g} to 1e9 reports a minute")
        if self.burst < 1:
            raise ValueError("the tenant burst must be at least 1 request")


class _Bucket:
    __slots__ = ("at", "tokens")

    def __init__(self, tokens: float, at: float) -> None:
        self.tokens = tokens
        self.at = at


class TokenBuckets:
    """A token bucket per tenant: `rate` tokens a second, holding at most `burst`."""

    def __init__(self, rate: float, burst: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()  # the auth dependencies run on the thread pool

    def take(self, tenant: str) -> float:
        """Take a token of `tenant`'s: 0 when there was one, else the seconds until there is."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            now = self.clock()
            bucket = self._buckets.get(tenant)
            if bucket is None:
                bucket = self._buckets[tenant] = _Bucket(self.burst, now)
                if len(self._buckets) > 10_000:
                    self._forget_full(now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0.0
            return (1 - bucket.tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        # A bucket that has refilled holds nothing a fresh one would not: drop it, so that the
        # table holds only the tenants of the last few seconds.
        refilled = [tenant for tenant, bucket in self._buckets.items()
                    if bucket.tokens + (now - bucket.at) * self.rate >= self.burst]
        for tenant in refilled:
            del self._buckets[tenant]


class TenantQuotas:
    """The request and report limits of every tenant, checked as a token is authenticated."""

    def __init__(self, quotas: Quotas, clock: Callable[[], float] = time.monotonic) -> None:
        self.quotas = quotas
        self.requests = TokenBuckets(quotas.rate, quotas.burst, clock)
        self.reports = TokenBuckets(quotas.report_rate / 60, max(1.0, quotas.report_rate), clock)
        self._reporting: set[str] = set()
        self._lock = threading.Lock()
        self.reads = TenantReads()

    def admit(self, tenant: str) -> None:
        """A request of `tenant`'s may go on; TenantLimited when it is over its rate."""
        wait = self.requests.take(tenant)
        if wait:
            quotas = self.quotas
            raise TenantLimited(
                "rate_limited", f"this tenant sends more than {quotas.rate:g} requests a second "
                f"(bursts of {quotas.burst:,}; mot serve --tenant-rate/--tenant-burst); retry "
                f"after the Retry-After header's seconds", wait)

    @contextmanager
    def report(self, tenant: str) -> Iterator[None]:
        """Hold `tenant`'s one report at a time; TenantLimited when one runs or over the rate."""
        with self._lock:
            if tenant in self._reporting:
                raise TenantLimited("report_busy", "this tenant's previous report is still "
                                    "being made; one report at a time per tenant", 1)
            wait = self.reports.take(tenant)
            if wait:
                raise TenantLimited(
                    "report_rate", f"this tenant asks for more than {self.quotas.report_rate:g} "
                    "reports a minute (mot serve --report-rate); retry after the Retry-After "
                    "header's seconds", wait)
            self._reporting.add(tenant)
        try:
            yield
        finally:
            with self._lock:
                self._reporting.discard(tenant)


async def _wait(waiting: dict[str, deque[anyio.Event]], tenant: str,
                pass_on: Callable[[], None]) -> None:
    """Wait at the back of `tenant`'s queue in `waiting` until handed a turn; cancelled once
    handed one, `pass_on` gives it to the next."""
    import anyio

    event = anyio.Event()
    waiting.setdefault(tenant, deque()).append(event)
    try:
        await event.wait()
    except BaseException:
        if event.is_set():
            pass_on()
        else:
            queue = waiting.get(tenant)
            if queue is not None:
                queue.remove(event)
                if not queue:
                    del waiting[tenant]
        raise


class TenantReads:
    """At most `slots` reads of one tenant at once: its others wait in order, holding no
    thread, and the thread pool stays open to every other tenant (one event loop: no lock)."""

    def __init__(self, slots: int = TENANT_READS) -> None:
        self.slots = slots
        self._running: dict[str, int] = {}
        self._waiting: dict[str, deque[anyio.Event]] = {}

    def running(self, tenant: str) -> int:
        return self._running.get(tenant, 0)

    @asynccontextmanager
    async def turn(self, tenant: str) -> AsyncIterator[None]:
        if tenant not in self._waiting and self._running.get(tenant, 0) < self.slots:
            self._running[tenant] = self._running.get(tenant, 0) + 1
        else:
            await _wait(self._waiting, tenant, lambda: self._release(tenant))
        try:
            yield
        finally:
            self._release(tenant)

    def _release(self, tenant: str) -> None:
        queue = self._waiting.get(tenant)
        if queue:  # the slot goes to the tenant's next read: its count stays
            queue.popleft().set()
            if not queue:
                del self._waiting[tenant]
            return
        left = self._running[tenant] - 1
        if left:
            self._running[tenant] = left
        else:
            del self._running[tenant]


class FairTurns:
    """`slots` turns at once, handed round the tenants that wait: one tenant's queue of chunks
    never stands between another tenant and the next free turn (one event loop: no lock)."""

    def __init__(self, slots: int) -> None:
        self.free = slots
        # tenant -> its waiters, in the order the tenants take their next turn
        self._waiting: dict[str, deque[anyio.Event]] = {}

    @asynccontextmanager
    async def turn(self, tenant: str) -> AsyncIterator[None]:
        if self.free > 0 and not self._waiting:
            self.free -= 1
        else:
            await _wait(self._waiting, tenant, self._release)
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        if not self._waiting:
            self.free += 1
            return
        tenant = next(iter(self._waiting))
        queue = self._waiting.pop(tenant)
        event = queue.popleft()
        if queue:  # the tenant's next waiter goes to the back of the round
            self._waiting[tenant] = queue
        event.set()
