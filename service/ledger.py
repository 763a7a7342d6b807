"""Use cases of the ledger: record a batch, import a stream, replay the quarantine.

Every entry point (CLI, HTTP, Kafka consumer) records moments through
`LedgerService`; there is no second path into the ledger.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from time import monotonic

from mot.domain.erasure import is_erased_customer
from mot.domain.identity import MomentKey
from mot.domain.ledger import Outcome, Stream, Verdict, decide, message_key
from mot.domain.messages import Message, RecordMoment, Rejection, parse_message
from mot.domain.quarantine import Quarantined, Rejected
from mot.domain.timefmt import utc_now
from mot.service.parsing import Parsed, parse_items
from mot.service.ports import Append, LedgerStore

DEFAULT_BATCH = 1000
DEFAULT_COMMIT = 20_000


@dataclass(frozen=True, slots=True)
class Incoming:
    """One message as received: its bytes and where it came from."""

    raw: bytes
    origin: str
    payload: bytes | None = None  # the wire JSON, when `raw` is in another format (a CSV row)
    problem: str | None = None  # set by a source that could not even map the record

    @property
    def message(self) -> bytes:
        return self.payload if self.payload is not None else self.raw


@dataclass(slots=True)
class Summary:
    """Counts of what happened; the same shape for one batch and for a whole import."""

    read: int = 0
    recorded: int = 0
    amended: int = 0
    retracted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    suppressed: int = 0  # naming an erased person or moment (SPEC §6): counted, not kept
    started: float = field(default_factory=monotonic)

    def add(self, outcomes: Counter[Outcome], read: int) -> None:
        self.read += read
        self.recorded += outcomes[Outcome.RECORDED]
        self.amended += outcomes[Outcome.AMENDED]
        self.retracted += outcomes[Outcome.RETRACTED]
        self.duplicates += outcomes[Outcome.DUPLICATE]
        self.quarantined += outcomes[Outcome.QUARANTINED]
        self.suppressed += outcomes[Outcome.SUPPRESSED]

    def merge(self, other: Summary) -> None:
        """Add another summary's counts to this one (several files, one total)."""
        self.read += other.read
        self.recorded += other.recorded
        self.amended += other.amended
        self.retracted += other.retracted
        self.duplicates += other.duplicates
        self.quarantined += other.quarantined
        self.suppressed += other.suppressed

    @property
    def seconds(self) -> float:
        return monotonic() - self.started

    def as_dict(self) -> dict[str, float | int]:
        return {
            "read": self.read, "recorded": self.recorded, "amended": self.amended,
            "retracted": self.retracted, "duplicates": self.duplicates,
            "quarantined": self.quarantined,
            **({"suppressed": self.suppressed} if self.suppressed else {}),
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True, slots=True)
class BatchResult:
    """The verdict for each message of a batch, in order."""

    verdicts: list[Verdict]

    def outcomes(self) -> Counter[Outcome]:
        return Counter(verdict.outcome for verdict in self.verdicts)


class LedgerService:
    """Records moments, amendments and retractions; keeps what it cannot record."""

    def __init__(self, store: LedgerStore, clock: Callable[[], datetime] = utc_now) -> None:
        self.store = store
        self.clock = clock

    def record(self, items: Sequence[Incoming]) -> BatchResult:
        """Validate and record one batch in one transaction; rejects go to the quarantine."""
        now = self.clock()
        return self._record_parsed(items, parse_items(items, now), now)

    def record_parsed(self, items: Sequence[Incoming], parsed: Sequence[Parsed],
                      now: datetime) -> BatchResult:
        """Record a batch parsed ahead (by `parse_here` or a `ParsePool`); inside a
        `store.transaction()` it commits with the other batches of that unit."""
        return self._record_parsed(items, parsed, now)

    def _record_parsed(self, items: Sequence[Incoming], parsed: Sequence[Parsed],
                       now: datetime) -> BatchResult:
        def plan(streams: dict[MomentKey, Stream]) -> Append:
            dropped = self._suppressed(items, parsed, streams)
            messages = [(p, item.origin) for i, (p, item) in enumerate(zip(parsed, items, strict=True))
                        if not isinstance(p, Rejection) and i not in dropped]
            decision = decide(messages, streams, now)
            verdicts = _merge_verdicts(parsed, decision.verdicts, dropped)
            rejected = [
                Rejected(item.raw, item.payload, item.origin, v.rejection.field, v.rejection.reason)
                for item, v in zip(items, verdicts, strict=True) if v.rejection is not None
            ]
            return Append(decision.events, rejected=rejected, verdicts=verdicts)

        keys = {message_key(p) for p in parsed if not isinstance(p, Rejection)}
        append = self.store.record(keys, plan)
        return BatchResult(list(append.verdicts))

    def _suppressed(self, items: Sequence[Incoming], parsed: Sequence[Parsed],
                    streams: dict[MomentKey, Stream]) -> set[int]:
        """The messages (by index) that name an erased person (on the suppression list) or
        correct an erased moment: dropped and counted, never recorded nor quarantined (the
        quarantine would keep their personal data). Asked inside the write transaction."""
        store = self.store
        if not store.suppression_active():
            return set()
        out: set[int] = set()
        named: dict[int, tuple[str, str]] = {}
        erased = {moment_id for (_, moment_id), stream in streams.items()
                  if is_erased_customer(str(stream.current.get("customer_id", "")))}
        for i, p in enumerate(parsed):
            if isinstance(p, RecordMoment):
                named[i] = (p.tenant, str(p.moment["customer_id"]))
            elif isinstance(p, Rejection):
                pair = _customer_named(items[i].message)
                if pair is not None:
                    named[i] = pair
            elif p.moment_id in erased:
                out.add(i)
        if named:
            hit = store.suppressed(set(named.values()))
            out |= {i for i, pair in named.items() if pair in hit}
        return out

    def fix_quarantined(self, quarantine_id: int, payload: bytes) -> Fix:
        """Replay quarantined message `quarantine_id` as `payload` (a corrected message).

        A correction that is itself invalid changes nothing. A valid one that the ledger
        still rejects (its moment is not recorded yet, say) is kept as what the entry
        replays from now on, merged into an entry of the same content if there is one.
        """
        invalid = parse_message(payload, self.clock())
        if isinstance(invalid, Rejection):
            return Fix(Summary(), invalid, None, quarantine_id)
        summary = self.replay_quarantine([quarantine_id], payloads={quarantine_id: payload})
        left = self.store.quarantine(ids=[quarantine_id])
        if not left:
            return Fix(summary, None, None, None)
        entry = left[0]
        holder = self.store.set_quarantined_payload(quarantine_id, payload, entry.field,
                                                    entry.reason)
        return Fix(summary, None, entry.reason, holder)

    def replay_quarantine(
        self, ids: Sequence[int] | None = None, *, batch_size: int = DEFAULT_BATCH,
        payloads: Mapping[int, bytes] | None = None,
    ) -> Summary:
        """Validate quarantined messages again; what now goes in leaves the quarantine.

        Passes repeat while they make progress, so a moment and an amendment of it
        that were both quarantined go in whatever their order. The summary counts each
        message once, by how its last pass ended.
        """
        total = Summary()
        final: dict[int, Outcome] = {}  # quarantine id -> its outcome in its latest pass
        while True:
            entries = self.store.quarantine(ids=ids)
            if not entries:
                break
            progress_made = False
            for start in range(0, len(entries), batch_size):
                batch = entries[start:start + batch_size]
                now = self.clock()
                parsed = [parse_message(payloads.get(entry.id, entry.message) if payloads
                                        else entry.message, now) for entry in batch]

                def plan(streams: dict[MomentKey, Stream], batch: list[Quarantined] = batch,
                         parsed: list[Message | Rejection] = parsed, now: datetime = now) -> Append:
                    messages = [(p, e.origin) for p, e in zip(parsed, batch, strict=True)
                                if not isinstance(p, Rejection)]
                    decision = decide(messages, streams, now)
                    verdicts = _merge_verdicts(parsed, decision.verdicts)
                    resolved = [e.id for e, v in zip(batch, verdicts, strict=True)
                                if v.rejection is None]
                    still = [(e.id, v.rejection.field, v.rejection.reason)
                             for e, v in zip(batch, verdicts, strict=True)
                             if v.rejection is not None]
                    return Append(decision.events, resolved=resolved, still_rejected=still,
                                  verdicts=verdicts)

                keys = {message_key(p) for p in parsed if not isinstance(p, Rejection)}
                append = self.store.record(keys, plan)
                final.update((e.id, v.outcome) for e, v in zip(batch, append.verdicts, strict=True))
                progress_made = progress_made or bool(append.resolved)
            if not progress_made:
                break
        total.add(Counter(final.values()), len(final))
        return total


@dataclass(frozen=True, slots=True)
class Fix:
    """What `fix_quarantined` did: the replay's counts; `invalid` when the corrected message
    itself breaks the wire format (nothing changed); `still_rejected`, the ledger's reason,
    and `kept_as`, the entry that now holds the corrected message, when it did not go in."""

    summary: Summary
    invalid: Rejection | None
    still_rejected: str | None
    kept_as: int | None


def _merge_verdicts(parsed: Sequence[Message | Rejection], decided: Sequence[Verdict],
                    suppressed: Collection[int] = ()) -> list[Verdict]:
    """Verdicts for the whole batch: suppressed messages and parse rejections in place,
    decisions for the rest."""
    decisions: Iterator[Verdict] = iter(decided)
    return [
        Verdict(Outcome.SUPPRESSED, None if isinstance(p, Rejection) else p.moment_id)
        if i in suppressed else
        Verdict(Outcome.QUARANTINED, None, p) if isinstance(p, Rejection) else next(decisions)
        for i, p in enumerate(parsed)
    ]


def _customer_named(message: bytes) -> tuple[str, str] | None:
    """(tenant, customer id) a message that failed validation names, if it says."""
    import orjson

    try:
        data = orjson.loads(message)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("customer_id"), str):
        return None
    tenant = data.get("tenant", "default")
    return (tenant if isinstance(tenant, str) else "default"), data["customer_id"]
