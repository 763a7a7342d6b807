"""Use cases of API access: bearer tokens, and recording on behalf of one tenant.

A token belongs to one tenant and carries the scopes `read` and/or `write`.
Only its SHA-256 is stored; the token is shown once, when created, and can be
revoked. Every HTTP entry point authenticates through `AccessService` and
writes through `TenantLedger`, which keeps a token inside its tenant:

- a moment that names no tenant gets the token's tenant; one that names
  another tenant is refused (outcome `rejected`, nothing stored);
- an amend or retract is accepted only for a moment of the token's tenant
  (recorded before, or earlier in the same batch). Any other target, another
  tenant's moment or an unknown one, is refused with the same answer, so a
  token learns nothing about other tenants' ids, and nothing lands in the
  quarantine from which an operator's replay could later apply it to another
  tenant's moment;
- inside the write transaction a fence checks again that no event goes to a
  stream of another tenant (a moment recorded meanwhile by someone else); if
  one would, the transaction is rolled back and the batch decided again.

Writers of one process commit in groups (`GroupCommit`): the batches that wait while one
transaction is written go together into the next, each decided on its own and answered
after that commit.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Generic, Protocol, TypeVar

import orjson

from mot.domain.events import LedgerEvent
from mot.domain.messages import duplicate_field
from mot.domain.quarantine import Quarantined
from mot.domain.schema import MAX_TENANT, inexact_integer
from mot.domain.timefmt import format_utc, utc_now
from mot.service.ledger import Incoming, LedgerService
from mot.service.ports import Append, LedgerStore, Loaded

SCOPES: Final = ("read", "write", "admin")  # admin: erase a person of its tenant (SPEC §6)
TOKEN_PREFIX: Final = "mot_"
MAX_LABEL: Final = 256
REJECTED: Final = "rejected"  # an outcome of the HTTP entry points only: refused, not stored
FENCE_ATTEMPTS: Final = 3


class AccessError(ValueError):
    """A token request that cannot be honoured (unknown scope, empty tenant, no such token)."""


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A stored token: never the token itself, only its hash."""

    id: int
    tenant: str
    scopes: frozenset[str]
    hash: str
    created_at: str
    revoked_at: str | None
    label: str

    def as_record(self) -> dict[str, Any]:
        return {"id": self.id, "tenant": self.tenant, "scopes": ",".join(sorted(self.scopes)),
                "label": self.label, "created_at": self.created_at, "revoked_at": self.revoked_at}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for: a token's id, tenant and scopes."""

    token_id: int
    tenant: str
    scopes: frozenset[str]

    def can(self, scope: str) -> bool:
        return scope in self.scopes


class TokenStore(Protocol):
    """Where tokens are kept (adapters/stores/tokens.py)."""

    def add(self, tenant: str, scopes: Sequence[str], digest: str, label: str,
            created_at: str) -> int: ...

    def all(self) -> list[ApiToken]: ...

    def get(self, token_id: int) -> ApiToken | None: ...

    def by_digest(self, digest: str) -> ApiToken | None: ...

    def revoke(self, token_id: int, at: str) -> bool: ...


def digest_of(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def parse_scopes(text: str | Iterable[str]) -> tuple[str, ...]:
    """`write,read` -> ('read', 'write'); unknown or no scopes are an AccessError."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    scopes = {p.strip().lower() for p in parts if p.strip()}
    unknown = scopes - set(SCOPES)
    if unknown:
        raise AccessError(f"unknown scope {', '.join(sorted(unknown))}; expected read, write and/or admin")
    if not scopes:
        raise AccessError("a token needs at least one scope: read, write and/or admin")
    return tuple(s for s in SCOPES if s in scopes)


def check_token_request(tenant: str, scopes: str | Iterable[str], label: str) -> tuple[str, ...]:
    """The scopes of a token `create` would make; an AccessError for a request it would
    refuse (`mot token create` asks before it opens the store, which it would create)."""
    if not 1 <= len(tenant) <= MAX_TENANT or tenant != tenant.strip() or "\x00" in tenant:
        raise AccessError(f"tenant must be 1 to {MAX_TENANT} characters without surrounding "
                          f"spaces, got {tenant!r}")
    if len(label) > MAX_LABEL:
        raise AccessError(f"label must be at most {MAX_LABEL} characters")
    return parse_scopes(scopes)


class AccessService:
    """Creates, lists, revokes and checks API tokens."""

    def __init__(self, store: TokenStore, clock: Callable[[], datetime] = utc_now) -> None:
        self.store = store
        self.clock = clock

    def create(self, tenant: str, scopes: str | Iterable[str], label: str = "") -> tuple[ApiToken, str]:
        """A new token for `tenant`; returns it stored and the token text (shown only now)."""
        chosen = check_token_request(tenant, scopes, label)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token_id = self.store.add(tenant, chosen, digest_of(token), label, format_utc(self.clock()))
        stored = self.store.get(token_id)
        assert stored is not None
        return stored, token

    def list(self) -> list[ApiToken]:
        return self.store.all()

    def revoke(self, token_id: int) -> ApiToken:
        """Revoke a token at once: its next request is refused. Revoking twice is harmless."""
        if not self.store.revoke(token_id, format_utc(self.clock())):
            raise AccessError(f"no token {token_id}")
        stored = self.store.get(token_id)
        assert stored is not None
        return stored

    def authenticate(self, token: str) -> Principal | None:
        """The principal of a live token, or None (unknown, malformed or revoked)."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
            return None
        digest = digest_of(token)
        stored = self.store.by_digest(digest)
        if stored is None or stored.revoked_at is not None:
            return None
        if not hmac.compare_digest(stored.hash, digest):
            return None
        return Principal(stored.id, stored.tenant, stored.scopes)


# -- recording for one tenant ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Submitted:
    """One message of a request: bytes as received, the decoded wire JSON, where it came from.

    `payload` is the wire JSON when `raw` is in another format (a vendor record);
    `problem` is set when a source could not map the record at all.
    """

    raw: bytes
    data: Any
    origin: str
    payload: bytes | None = None
    problem: str | None = None
    names: tuple[tuple[str, str], ...] = ()  # Incoming.names


@dataclass(frozen=True, slots=True)
class Answer:
    """What happened to one message of a request, by its index in the request."""

    index: int
    outcome: str  # recorded, amended, retracted, duplicate, quarantined, or rejected
    moment_id: str | None = None
    field: str | None = None
    reason: str | None = None

    def as_record(self) -> dict[str, Any]:
        return {"index": self.index, "outcome": self.outcome, "moment_id": self.moment_id,
                "field": self.field, "reason": self.reason}


class TenantConflict(RuntimeError):
    """A batch would have written to another tenant's moment; it was rolled back."""


_MISSING: Final = object()


T = TypeVar("T")


class _Write(Generic[T]):
    __slots__ = ("done", "error", "result", "write")

    def __init__(self, write: Callable[[], T]) -> None:
        self.write = write
        self.done = False
        self.result: T | None = None
        self.error: BaseException | None = None

    def alone(self) -> None:
        try:
            self.result = self.write()
        except Exception as error:  # this write's answer, raised in its own thread
            self.error = error
        self.done = True

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]  # (done without an error: set)


class GroupCommit:
    """Writers of one process take turns, and the one whose turn it is writes the batches
    that came while the previous transaction was written too, all in one transaction
    (`store.transaction()`, which each batch's own `store.record` joins): one commit, with
    its round trip, WAL flush and lock, for several requests' batches. Each batch is still
    decided on its own, seeing the ones written before it in the same transaction, and its
    writer returns only after the commit, so no answer is given for what a crash could still
    take back. When any batch of a group fails, the group is rolled back whole and each of its
    batches written again in its own transaction, so that one batch's error is its own.

    The turns are taken before the store's own writer lock: SQLite's busy-wait would
    otherwise put concurrent requests to sleep for up to 100 ms at a time.
    """

    def __init__(self, store: LedgerStore | None = None) -> None:
        self.store = store
        self._cond = threading.Condition()
        self._waiting: list[_Write[Any]] = []
        self._busy = False
        self.commits = 0  # transactions written, groups or alone (tests read it)

    def run(self, write: Callable[[], T]) -> T:
        """`write()` (a `store.record`), committed alone or with the others waiting."""
        entry = _Write(write)
        with self._cond:
            self._waiting.append(entry)
            while self._busy and not entry.done:
                self._cond.wait()
            if entry.done:
                return entry.outcome()
            self._busy = True
            group, self._waiting = self._waiting, []
        try:
            self._write(group)
        finally:
            with self._cond:
                self._busy = False
                for other in group:  # a BaseException ended the group: its batches failed
                    if not other.done:
                        other.error, other.done = RuntimeError("the write was interrupted"), True
                self._cond.notify_all()
        return entry.outcome()

    def _write(self, group: list[_Write[Any]]) -> None:
        if len(group) == 1 or self.store is None:
            for entry in group:
                entry.alone()
                self.commits += 1
            return
        results = []
        try:
            with self.store.transaction():
                for entry in group:
                    results.append(entry.write())
        except Exception:  # rolled back whole: each alone, for its own answer
            for entry in group:
                entry.alone()
                self.commits += 1
            return
        self.commits += 1
        for entry, result in zip(group, results, strict=True):
            entry.result, entry.done = result, True


class TenantLedger:
    """Records batches on behalf of one tenant at a time; one per process (it serialises
    writers, committing in groups: `GroupCommit`). Validation runs outside the turns."""

    def __init__(self, store: LedgerStore) -> None:
        self.store = store
        self.writers = GroupCommit(store)

    def record(self, tenant: str, items: Sequence[Submitted]) -> list[Answer]:
        for attempt in range(1, FENCE_ATTEMPTS + 1):
            try:
                return self._record(tenant, items)
            except TenantConflict:
                if attempt == FENCE_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def _record(self, tenant: str, items: Sequence[Submitted]) -> list[Answer]:
        answers: dict[int, Answer] = {}
        incoming: list[Incoming] = []
        positions: list[int] = []
        for index, item in enumerate(items):
            data = item.data
            payload = item.payload
            if item.problem is None and isinstance(data, dict):
                kind = data.get("type")
                if kind in (None, "moment", "amend", "retract", "link", "unlink"):
                    # A correction too names the token's tenant: moment ids are scoped by
                    # tenant, so it can only ever reach this tenant's moment of that id.
                    named = data.get("tenant", _MISSING)
                    if named is _MISSING:
                        payload = _with_tenant(item.raw if payload is None else payload, data,
                                               tenant)
                        data = {**data, "tenant": tenant}
                    elif named != tenant:
                        answers[index] = Answer(
                            index, REJECTED, None, "tenant",
                            f"tenant: this token writes only tenant {tenant!r}, not "
                            f"{_shown(named)}; leave tenant out or send {tenant!r}")
                        continue
            # Text holding U+0000 (which PostgreSQL cannot store) is refused by the wire
            # format itself, naming the field, as from a file or Kafka.
            positions.append(index)
            incoming.append(Incoming(item.raw, item.origin, payload, item.problem, item.names))
        if incoming:
            fenced = _Fence(self.store, tenant, self.writers)
            result = LedgerService(fenced).record(incoming)
            for index, verdict in zip(positions, result.verdicts, strict=True):
                rejection = verdict.rejection
                answers[index] = Answer(
                    index, verdict.outcome.value, verdict.moment_id,
                    None if rejection is None else rejection.field,
                    None if rejection is None else rejection.reason)
        return [answers[i] for i in range(len(items))]


def _with_tenant(wire: bytes, data: dict[str, Any], tenant: str) -> bytes:
    """The message with `tenant` added. Encoded again from its decoded value, except when it
    holds an integer beyond 64 bits (decoding made that a rounded float) or a field given
    twice (decoding kept the last), or nests deeper than orjson encodes (255 levels: a 500
    before): the tenant then goes into its own text instead, and the ledger rejects the
    message as it was sent, naming the field."""
    if inexact_integer(wire) is None and duplicate_field(wire, data) is None:
        try:
            return orjson.dumps({**data, "tenant": tenant})
        except orjson.JSONEncodeError:
            pass
    body = wire.strip()[1:]  # after the object's `{`; `data` is not empty, it holds the integer
    return b'{"tenant":' + orjson.dumps(tenant) + b"," + body


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= 80 else text[:77] + "..."


class _Fence:
    """The ledger store, refusing (inside the write transaction) any event on another tenant's moment."""

    def __init__(self, store: LedgerStore, tenant: str, writers: GroupCommit) -> None:
        self.store = store
        self.tenant = tenant
        self.writers = writers

    def record(self, keys: Collection[tuple[str | None, str]],
               plan: Callable[[Loaded], Append], pairs: Collection[str] = (),
               stream_ids: Mapping[tuple[str, str], str] | None = None) -> Append:
        tenant = self.tenant

        def fenced(loaded: Loaded) -> Append:
            append = plan(loaded)
            if any(event.tenant != tenant for event in append.events):
                raise TenantConflict(f"a batch of tenant {tenant!r} would change another tenant's "
                                     "moment or pair; rolled back")
            return append

        return self.writers.run(lambda: self.store.record(keys, fenced, pairs, stream_ids))

    def transaction(self, waiting: Callable[[], None] | None = None
                    ) -> AbstractContextManager[None]:
        return self.store.transaction(waiting)

    def sealed(self) -> bool:
        return self.store.sealed()

    def suppression_active(self) -> bool:
        return self.store.suppression_active()

    def suppressed(self, customers: Collection[tuple[str, str]]) -> set[tuple[str, str]]:
        return self.store.suppressed(customers)

    def stream(self, moment_id: str, tenant: str | None = None) -> list[LedgerEvent]:
        return self.store.stream(moment_id, tenant)

    def notifications(self, after: int, limit: int) -> list[tuple[int, LedgerEvent]]:
        return self.store.notifications(after, limit)

    def head(self) -> int:
        return self.store.head()

    def count(self, upto: int) -> int:
        return self.store.count(upto)

    def tenants(self) -> list[str]:
        # A tenant's fence names no other tenant: their names are theirs.
        return [tenant for tenant in self.store.tenants() if tenant == self.tenant]

    def quarantine(self, *, limit: int | None = None, ids: Collection[int] | None = None,
                   field: str | None = None, reason: str | None = None) -> list[Quarantined]:
        return self.store.quarantine(limit=limit, ids=ids, field=field, reason=reason)

    def quarantine_reasons(self) -> list[tuple[str, str, int, int]]:
        return self.store.quarantine_reasons()

    def quarantine_by_tenant(self) -> dict[str | None, int]:
        return self.store.quarantine_by_tenant()

    def quarantine_count(self) -> int:
        return self.store.quarantine_count()

    def drop_quarantined(self, ids: Collection[int]) -> int:
        return self.store.drop_quarantined(ids)

    def set_quarantined_payload(self, quarantine_id: int, payload: bytes,
                                field: str | None = None, reason: str | None = None) -> int:
        return self.store.set_quarantined_payload(quarantine_id, payload, field, reason)

    def close(self) -> None:
        self.store.close()

