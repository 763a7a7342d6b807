"""Ingest with bounded memory: request bodies within a shared budget, batches recorded in chunks.

A request's memory is its body plus one chunk of decoded messages plus its answer (kept
as JSON bytes as each chunk is recorded), never one object per message of the whole
batch. All requests together hold at most `memory_budget` bytes of bodies, one tenant's
at most `tenant_memory`: a request waits for room (its Content-Length, or the body limit
when it sends none) and is answered with Retry-After when none frees up in time, 429 when
its tenant's own share is full, 503 when the server's is.

Each chunk is recorded through the tenant's ledger (the batch recording `mot import` uses),
on a thread of the ingest pool, so other requests are answered between chunks; the pool's
turns go round the tenants (tenancy.FairTurns). The chunks waiting while one transaction is
written are committed together in the next (service.access.GroupCommit). A batch is
answered after its last chunk committed; a server killed mid-way has committed whole
chunks only, and sending the batch again answers those duplicate and records the rest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
import anyio.to_thread
import orjson
from starlette.requests import Request

from mot.adapters.http.bodies import (
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_ITEMS,
    DEFAULT_READ_TIMEOUT,
    declared_length,
    read_limited,
    refuse_encoded,
)
from mot.adapters.http.metrics import Metrics
from mot.adapters.http.tenancy import FairTurns, TenantLimited
from mot.service.access import Principal, Submitted, TenantConflict, TenantLedger
from mot.service.ledger import DEFAULT_COMMIT
from mot.service.workers import HeapTrim

DEFAULT_MEMORY_BUDGET: Final = 64 * 1024 * 1024
DEFAULT_BUDGET_WAIT: Final = 10.0
DEFAULT_CHUNK: Final = 1000  # the batch size of `mot import`
RETRY_AFTER: Final = 2


@dataclass(frozen=True, slots=True)
class Limits:
    """What one request, and all of them together, may take (the options of `mot serve`)."""

    max_body: int = DEFAULT_MAX_BODY
    max_items: int = DEFAULT_MAX_ITEMS
    memory_budget: int = DEFAULT_MEMORY_BUDGET
    budget_wait: float = DEFAULT_BUDGET_WAIT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    chunk: int = DEFAULT_CHUNK
    # One tenant's bodies at once; None: half the memory budget, and at least one body.
    tenant_memory: int | None = None

    def __post_init__(self) -> None:
        if self.memory_budget < self.max_body:
            raise ValueError(f"the memory budget ({self.memory_budget:,} bytes) must be at least "
                             f"the body limit ({self.max_body:,} bytes)")
        if self.tenant_memory is not None and not (
                self.max_body <= self.tenant_memory <= self.memory_budget):
            raise ValueError(f"a tenant's memory ({self.tenant_memory:,} bytes) must be at least "
                             f"the body limit ({self.max_body:,} bytes) and at most the memory "
                             f"budget ({self.memory_budget:,} bytes)")
        if self.max_items < 1 or self.chunk < 1:
            raise ValueError("the item limit and the chunk size must be at least 1")

    @property
    def tenant_share(self) -> int:
        if self.tenant_memory is not None:
            return self.tenant_memory
        return max(self.max_body, self.memory_budget // 2)

    @property
    def unverified_share(self) -> int:
        """What the bodies of signed webhooks whose signature is not checked yet hold at once,
        all vendors together: an eighth of the budget (at least one body). Anyone can send
        them, so forged ones must leave the tenants most of the memory; sized as a tenant's,
        two vendors' forgeries took the whole budget."""
        return min(self.tenant_share, max(self.max_body, self.memory_budget // 8))


# The holder of the bodies of signed webhooks read before their signature is checked (a
# tenant's name holds no NUL): one share for every vendor, forged ones included.
UNVERIFIED: Final = "\0webhook"


class Overloaded(Exception):
    """No room in the memory budget in time (answered 503 with Retry-After)."""

    def __init__(self, waited: float) -> None:
        super().__init__(f"the server is busy with other large requests (no room in its memory "
                         f"budget after {waited:g} s); retry in {RETRY_AFTER} s")
        self.retry_after = RETRY_AFTER


class ChunkConflict(Exception):
    """A chunk would have written to another tenant's moment (answered 409)."""


class MemoryBudget:
    """Bytes of request bodies held at once, across requests and by each tenant (one event
    loop: no lock). A tenant over its share waits for its own requests, not for others'."""

    def __init__(self, total: int, wait: float, tenant_share: int | None = None) -> None:
        self.total = total
        self.wait = wait
        self.tenant_share = total if tenant_share is None else min(tenant_share, total)
        self.shares: dict[str, int] = {}  # a holder's share when not a tenant's (UNVERIFIED)
        self.used = 0
        self.by_tenant: dict[str, int] = {}
        self._freed: anyio.Event | None = None

    def _fits(self, tenant: str, size: int, share: int) -> bool:
        return self.used + size <= self.total and self.by_tenant.get(tenant, 0) + size <= share

    @asynccontextmanager
    async def hold(self, size: int, tenant: str = "") -> AsyncIterator[None]:
        share = self.shares.get(tenant, self.tenant_share)
        size = min(size, share)
        with anyio.move_on_after(self.wait):
            while not self._fits(tenant, size, share):
                if self._freed is None:
                    self._freed = anyio.Event()
                await self._freed.wait()
        if not self._fits(tenant, size, share):
            if self.used + size > self.total:
                raise Overloaded(self.wait)
            whose = ("this tenant's requests in progress hold", "its", "mot serve --tenant-memory")
            if tenant in self.shares:
                whose = ("signed webhooks whose signature is not checked yet hold", "their",
                         "an eighth of mot serve --memory-budget, at least --max-body")
            raise TenantLimited(
                "tenant_memory", f"{whose[0]} {self.by_tenant.get(tenant, 0):,} bytes of bodies, "
                f"{whose[1]} share of the server's memory is {share:,} ({whose[2]}); no room after "
                f"{self.wait:g} s: retry after the Retry-After header's seconds, or send fewer "
                f"requests at once", RETRY_AFTER, unread_body=True)
        self.used += size
        self.by_tenant[tenant] = self.by_tenant.get(tenant, 0) + size
        try:
            yield
        finally:
            self.used -= size
            left = self.by_tenant[tenant] - size
            if left:
                self.by_tenant[tenant] = left
            else:
                del self.by_tenant[tenant]
            if self._freed is not None:
                self._freed.set()
                self._freed = None


@dataclass(slots=True)
class Recorded:
    """A batch's answer as it is built: counts in order of first appearance, items as JSON."""

    counts: dict[str, int] = field(default_factory=dict)
    items: list[bytes] = field(default_factory=list)  # each chunk's items, without brackets
    size: int = 0

    def answer(self, request_id: str, tenant: str, **extra: Any) -> bytes:
        """`{"request_id", "tenant", "counts", "items", ...extra}` as JSON."""
        head = orjson.dumps({"request_id": request_id, "tenant": tenant, "counts": self.counts})
        tail = orjson.dumps(extra)[1:] if extra else b"}"
        items = b",".join(part for part in self.items if part)
        return head[:-1] + b',"items":[' + items + b"]" + (b"," + tail if extra else tail)


class Ingest:
    """Receives bodies within the limits and records batches chunk by chunk for a tenant."""

    def __init__(self, ledger: TenantLedger, metrics: Metrics, limits: Limits,
                 threads: int) -> None:
        self.ledger = ledger
        self.metrics = metrics
        self.limits = limits
        self.threads = threads
        self.budget = MemoryBudget(limits.memory_budget, limits.budget_wait,
                                   limits.tenant_share)
        self.budget.shares[UNVERIFIED] = limits.unverified_share
        # The chunks are recorded on up to `threads` threads, each allocating from a heap of
        # its own: trim them as often as `mot kafka ingest` does (a transaction's worth).
        self.heap = HeapTrim(DEFAULT_COMMIT)
        # At most `threads` chunks are validated and recorded at once (more would only contend
        # for the GIL and the writer lock), the turns going round the tenants that wait.
        self.turns = FairTurns(threads)

    @asynccontextmanager
    async def receive(self, request: Request, tenant: str) -> AsyncIterator[bytes]:
        """The request's body, held within the memory budget (and `tenant`'s share of it)
        until the block ends."""
        refuse_encoded(request.headers)  # before the body is held or read
        declared = declared_length(request.headers)
        limits = self.limits
        reserve = limits.max_body if declared is None else max(0, min(declared, limits.max_body))
        async with self.budget.hold(reserve, tenant):
            yield await read_limited(request.stream(), limits.max_body, declared,
                                     limits.read_timeout)

    async def record(self, entry: str, principal: Principal, prepare: Prepare) -> Recorded:
        """Record a batch chunk by chunk on the pool's threads, each chunk committed (with the
        others waiting at that moment) before the next is recorded.

        `prepare` (run on the first chunk's thread: it checks and splits the body) gives the
        number of messages and their chunks, decoded as they are needed; a batch of one chunk
        takes one trip to the pool.
        """
        job = _Job(self, entry, principal, prepare)
        more = True
        while more:
            # A turn a chunk: between two chunks of a long batch, other tenants' chunks go.
            async with self.turns.turn(principal.tenant):
                more = await anyio.to_thread.run_sync(job.step)
        return job.recorded


Chunks = Iterator[Sequence[Submitted]]
Prepare = Callable[[], tuple[int, Chunks]]


class _Job:
    """One batch being recorded: each step records its next chunk."""

    def __init__(self, ingest: Ingest, entry: str, principal: Principal,
                 prepare: Prepare) -> None:
        self.ingest = ingest
        self.entry = entry
        self.principal = principal
        self.prepare: Prepare | None = prepare
        self.total = 0
        self.chunks: Chunks = iter(())
        self.recorded = Recorded()

    def step(self) -> bool:
        """Record the next chunk; whether any remain."""
        if self.prepare is not None:
            self.total, self.chunks = self.prepare()
            self.prepare = None
        chunk = next(self.chunks, None)
        if chunk is None:
            return False
        recorded = self.recorded
        try:
            answers = self.ingest.ledger.record(self.principal.tenant, chunk)
        except TenantConflict as error:
            done = (f"; its first {recorded.size:,} messages were recorded (sending them again "
                    "answers duplicate)" if recorded.size else "")
            raise ChunkConflict(f"{error}{done}; send the batch again") from error
        self.ingest.metrics.count_outcomes(self.entry, (a.outcome for a in answers))
        offset = recorded.size
        records = []
        for answer in answers:
            recorded.counts[answer.outcome] = recorded.counts.get(answer.outcome, 0) + 1
            record = answer.as_record()
            record["index"] += offset
            records.append(record)
        recorded.items.append(orjson.dumps(records)[1:-1])
        recorded.size += len(chunk)
        self.ingest.heap.recorded(len(chunk))
        return recorded.size < self.total
