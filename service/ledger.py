"""Use cases of the ledger: record a batch, import a stream, replay the quarantine.

Every entry point (CLI, HTTP, Kafka consumer) records moments through
`LedgerService`; there is no second path into the ledger.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from time import monotonic
from typing import NamedTuple, Protocol, cast

from mot.domain.erasure import is_erased_customer
from mot.domain.events import EncodedMoment, made_in_c
from mot.domain.identity import MomentKey
from mot.domain.ledger import Outcome, Stream, Verdict, Waiting, WaitKey, decide
from mot.domain.messages import (
    AmendMoment,
    LinkCustomers,
    Message,
    RecordMoment,
    Rejection,
    RetractMoment,
    parse_message,
)
from mot.domain.quarantine import (
    CORRECTIONS,
    Quarantined,
    Rejected,
    in_arrival_order,
    moment_ref,
    said_tenant,
)
from mot.domain.timefmt import utc_now
from mot.service.parsing import Parsed, parse_items
from mot.service.ports import Append, LedgerStore, Loaded

DEFAULT_BATCH = 1000

# Fields read in C of what a batch holds one of per message.
_origin = attrgetter("origin")  # an incoming message's
_outcome = attrgetter("outcome")  # a Verdict's
_rejection = attrgetter("rejection")  # a Verdict's
# Messages a bulk append (mot import, a Kafka backlog) commits at once. On SQLite each commit
# writes every index page it changed to the write-ahead log, and the ledger's stream-id index
# is keyed by a hash, so a commit changes nearly every leaf of it once the ledger holds about
# as many leaves as a commit has messages: what a message costs in pages written then grows
# with the ledger unless commits grow too (bench/NOTES.md, issue 19 "100k against 1M").
DEFAULT_COMMIT = 50_000


class Incoming(NamedTuple):
    """One message as received: its bytes and where it came from (a named tuple: a source
    makes one per message, at a fraction of a frozen dataclass's cost)."""

    raw: bytes
    origin: str
    payload: bytes | None = None  # the wire JSON, when `raw` is in another format (a CSV row)
    problem: str | None = None  # set by a source that could not even map the record
    # The (tenant, customer id)s a record that could not be mapped names, which its bytes
    # write only as the vendor's own ids (SPEC §6: its erasure and suppression go by these).
    names: tuple[tuple[str, str], ...] = ()

    @property
    def message(self) -> bytes:
        return self.payload if self.payload is not None else self.raw


new_incoming = made_in_c(Incoming)
"""An `Incoming` made in C from all five fields: (raw, origin, payload, problem, names)."""


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
    linked: int = 0
    unlinked: int = 0
    # Corrections that waited in the quarantine for their moment and went in with it
    # (not messages read here; they leave the quarantine).
    waited: int = 0

    def add(self, outcomes: Counter[Outcome], read: int, waited: int = 0) -> None:
        self.read += read
        self.recorded += outcomes[Outcome.RECORDED]
        self.amended += outcomes[Outcome.AMENDED]
        self.retracted += outcomes[Outcome.RETRACTED]
        self.duplicates += outcomes[Outcome.DUPLICATE]
        self.quarantined += outcomes[Outcome.QUARANTINED]
        self.suppressed += outcomes[Outcome.SUPPRESSED]
        self.linked += outcomes[Outcome.LINKED]
        self.unlinked += outcomes[Outcome.UNLINKED]
        self.waited += waited

    def merge(self, other: Summary) -> None:
        """Add another summary's counts to this one (several files, one total)."""
        self.read += other.read
        self.recorded += other.recorded
        self.amended += other.amended
        self.retracted += other.retracted
        self.duplicates += other.duplicates
        self.quarantined += other.quarantined
        self.suppressed += other.suppressed
        self.linked += other.linked
        self.unlinked += other.unlinked
        self.waited += other.waited

    def counts(self) -> str:
        """The counts in words: "read 3: recorded 2, ..., quarantined 0" (links, suppressed
        messages and waiting corrections only when there were some)."""
        links = (f"linked {self.linked:,}, unlinked {self.unlinked:,}, "
                 if self.linked or self.unlinked else "")
        suppressed = f", suppressed {self.suppressed:,}" if self.suppressed else ""
        waited = (f"; {self.waited:,} waiting correction{'s' if self.waited != 1 else ''} "
                  "applied" if self.waited else "")
        return (f"read {self.read:,}: recorded {self.recorded:,}, amended {self.amended:,}, "
                f"retracted {self.retracted:,}, {links}duplicates {self.duplicates:,}, "
                f"quarantined {self.quarantined:,}{suppressed}{waited}")

    @property
    def seconds(self) -> float:
        return monotonic() - self.started

    def as_dict(self) -> dict[str, float | int]:
        return {
            "read": self.read, "recorded": self.recorded, "amended": self.amended,
            "retracted": self.retracted, "linked": self.linked, "unlinked": self.unlinked,
            "duplicates": self.duplicates, "quarantined": self.quarantined,
            **({"suppressed": self.suppressed} if self.suppressed else {}),
            "waited": self.waited, "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True, slots=True)
class BatchResult:
    """The verdict for each message of a batch, in order."""

    verdicts: list[Verdict]
    # Corrections that waited in the quarantine and went in with this batch's moments.
    waited: int = 0

    def outcomes(self) -> Counter[Outcome]:
        return Counter(map(_outcome, self.verdicts))


class LedgerService:
    """Records moments, amendments and retractions; keeps what it cannot record."""

    def __init__(self, store: LedgerStore, clock: Callable[[], datetime] = utc_now) -> None:
        self.store = store
        self.clock = clock

    def tenants(self) -> list[str]:
        """The tenants that have recorded a moment, in order."""
        return self.store.tenants()

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
        def plan(loaded: Loaded) -> Append:
            dropped = self._suppressed(rejects, parsed, loaded.streams)
            if dropped or parse_rejects:
                messages = [(p, item.origin)
                            for i, (p, item) in enumerate(zip(parsed, items, strict=True))
                            if not isinstance(p, Rejection) and i not in dropped]
            else:  # the usual batch: every message goes to the decision, in order
                # (the pairs made in C: `items` are `Incoming`s or alike, origin second)
                messages = cast("list[tuple[Message, str]]",
                                list(zip(parsed, map(_origin, items), strict=True)))
            waiting = loaded.waiting
            unwaited: list[int] = []
            if dropped and waiting:
                waiting, unwaited = _waiting_for_suppressed(waiting, parsed, dropped)
            decision = decide(messages, loaded.streams, now, loaded.pairs,
                              _waiting(waiting, now))
            verdicts = (_merge_verdicts(parsed, decision.verdicts, dropped)
                        if dropped or parse_rejects else decision.verdicts)
            if dropped:
                verdicts = _suppress_waiting(verdicts, parsed, dropped)
            # Only a verdict that rejects has a `rejection` (a Rejection is never false):
            # looked for in C, the usual batch having none.
            rejected = in_arrival_order([
                Rejected(item.raw, item.payload, item.origin, v.rejection.field, v.rejection.reason,
                         v.waits_for, names=item.names)
                for item, v in zip(items, verdicts, strict=True) if v.rejection is not None
            ], loaded.waiting) if any(map(_rejection, verdicts)) else []
            resolved, still = _settled(decision.waited)
            purged[:] = unwaited
            return Append(decision.events, rejected=rejected, verdicts=verdicts,
                          resolved=[*resolved, *unwaited], still_rejected=still,
                          waited=decision.waited)

        parse_rejects = Rejection in map(type, parsed)  # (in C; no class derives from it)
        keys, pairs, rejects = _keys(parsed, items)
        purged: list[int] = []  # waiting corrections the plan purged (not let in)
        append = self.store.record(keys, plan, pairs, _stream_ids(parsed))
        return BatchResult(list(append.verdicts), len(append.resolved) - len(purged))

    def _suppressed(self, rejected: Mapping[int, Named], parsed: Sequence[Parsed],
                    streams: dict[MomentKey, Stream]) -> set[int]:
        """The messages (by index) that name an erased person (on the suppression list) or
        correct an erased moment, valid or not: dropped and counted, never recorded nor
        quarantined (the quarantine would keep their personal data). Asked inside the write
        transaction."""
        store = self.store
        if not store.suppression_active():
            return set()
        out: set[int] = set()
        named: dict[int, tuple[str, str]] = {}
        erased = {key for key, stream in streams.items()
                  if is_erased_customer(str(stream.current.get("customer_id", "")))}
        erased_ids = {moment_id for _, moment_id in erased}
        linking: dict[int, tuple[tuple[str, str], ...]] = {}  # a link names two customers

        def corrects_erased(tenant: str | None, moment_id: str) -> bool:
            # Moment ids are per tenant: another tenant's correction of that id is its own.
            return moment_id in erased_ids if tenant is None else (tenant, moment_id) in erased

        for i, p in enumerate(parsed):
            if isinstance(p, RecordMoment):
                named[i] = (p.tenant, str(p.moment["customer_id"]))
            elif isinstance(p, Rejection):
                what = rejected.get(i)
                if what is None:
                    continue
                tenant, customers, target = what
                if len(customers) == 1:
                    named[i] = customers[0]
                elif customers:
                    linking[i] = customers
                if target is not None and corrects_erased(tenant, target):
                    out.add(i)
            elif isinstance(p, LinkCustomers):
                linking[i] = tuple((p.tenant, customer) for customer in p.customer_ids)
            elif corrects_erased(p.tenant, p.moment_id):
                out.add(i)
        if named or linking:
            hit = store.suppressed(set(named.values()).union(*linking.values()))
            out |= {i for i, pair in named.items() if pair in hit}
            out |= {i for i, pairs in linking.items() if any(pair in hit for pair in pairs)}
        return out

    def fix_quarantined(self, quarantine_id: int, payload: bytes) -> Fix:
        """Replay quarantined message `quarantine_id` as `payload` (a corrected message).

        A correction that is itself invalid changes nothing. A valid one that the ledger
        still rejects (its moment is not recorded yet, say) is kept as what the entry
        replays from now on, merged into an entry of the same content if there is one.

        A correction that names no tenant keeps the one the quarantined message was sent
        for (an HTTP token's, a `--from` mapping's: in its payload, not in the raw bytes a
        user copies from `mot quarantine show`): it went to tenant "default" instead.
        """
        sent = self.store.quarantine(ids=[quarantine_id])
        if sent:
            payload = _with_tenant_of(sent[0].message, payload)
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

                sent = [payloads.get(entry.id, entry.message) if payloads else entry.message
                        for entry in batch]
                parsed = [_parse_again(entry, message, now, payloads)
                          for entry, message in zip(batch, sent, strict=True)]
                keys, pairs, rejects = _keys(parsed, batch, sent)

                def plan(loaded: Loaded, batch: list[Quarantined] = batch,
                         parsed: list[Message | Rejection] = parsed, now: datetime = now,
                         rejects: dict[int, Named] = rejects) -> Append:
                    # A replayed (or fixed) message naming an erased person is suppressed,
                    # and leaves the quarantine, as it would have been when first sent.
                    dropped = self._suppressed(rejects, parsed, loaded.streams)
                    messages = [(p, e.origin) for i, (p, e) in enumerate(zip(parsed, batch,
                                                                            strict=True))
                                if not isinstance(p, Rejection) and i not in dropped]
                    # What waits and is replayed here applies in batch order, once.
                    replayed = {e.id for e in batch}
                    waiting = _waiting([w for w in loaded.waiting if w.id not in replayed], now)
                    decision = decide(messages, loaded.streams, now, loaded.pairs, waiting)
                    verdicts = _merge_verdicts(parsed, decision.verdicts, dropped)
                    resolved, still = _settled(decision.waited)
                    resolved += [e.id for e, v in zip(batch, verdicts, strict=True)
                                 if v.rejection is None]
                    still += [(e.id, v.rejection.field, v.rejection.reason, v.waits_for)
                              for e, v in zip(batch, verdicts, strict=True)
                              if v.rejection is not None]
                    return Append(decision.events, resolved=resolved, still_rejected=still,
                                  verdicts=verdicts, waited=decision.waited)

                append = self.store.record(keys, plan, pairs)
                final.update((e.id, v.outcome) for e, v in zip(batch, append.verdicts, strict=True))
                final.update((qid, v.outcome) for qid, v in append.waited)
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


def _keys(parsed: Sequence[Parsed], sent: Sequence[HasNames],
          messages: Sequence[bytes] | None = None
          ) -> tuple[set[tuple[str | None, str]], set[str], dict[int, Named]]:
    """The moments (tenant, id) and the pairs (link stream id) a batch names; a rejected
    correction's moment too (whether it is erased decides its suppression); and what each
    rejected message names (`_named_by_rejected`, with the `names` its source gave it, by
    index: the suppression reads it). A message's bytes are `messages[i]`, or else its own
    `message`: read for a rejected message only, not gathered for every one."""
    keys: set[tuple[str | None, str]] = set()
    pairs: set[str] = set()
    rejected: dict[int, Named] = {}
    for i, p in enumerate(parsed):
        kind = type(p)
        if kind is RecordMoment or kind is AmendMoment or kind is RetractMoment:
            keys.add((p.tenant, p.moment_id))  # type: ignore[union-attr]
        elif kind is LinkCustomers:
            pairs.add(p.link_id)  # type: ignore[union-attr]
        elif kind is Rejection:
            what = _named_by_rejected(sent[i].message if messages is None else messages[i],
                                      sent[i].names)
            if what is not None:
                rejected[i] = what
                if what[2] is not None:
                    keys.add((what[0], what[2]))
    return keys, pairs, rejected


def _stream_ids(parsed: Sequence[Parsed]) -> dict[tuple[str, str], str]:
    """(tenant, moment id) -> its stream id, for the new moments whose parse worker made it
    (`EncodedMoment.stream_id`): the store then need not hash those keys."""
    return {(p.tenant, p.moment_id): stream_id for p in parsed
            if type(p) is RecordMoment and type(moment := p.moment) is EncodedMoment
            and (stream_id := moment.stream_id) is not None}


def _with_tenant_of(message: bytes, correction: bytes) -> bytes:
    """`correction` with the `tenant` of `message` (a quarantined message) when it names
    none and `message` names one; else `correction` as it is."""
    import orjson

    try:
        fixed, sent = orjson.loads(correction), orjson.loads(message)
    except orjson.JSONDecodeError:
        return correction
    if (isinstance(fixed, dict) and "tenant" not in fixed and isinstance(sent, dict)
            and isinstance(sent.get("tenant"), str)):
        return orjson.dumps({**fixed, "tenant": sent["tenant"]})
    return correction


def _parse_again(entry: Quarantined, message: bytes, now: datetime,
                 payloads: Mapping[int, bytes] | None) -> Message | Rejection:
    """An entry validated again; one rejected for no field of the wire format (a source's
    record it could not map, a CSV row of the wrong width, a line that is no JSON object)
    is no wire message to validate: it keeps its own reason (what to fix) until a fix
    gives it a payload, instead of the wire format's reading of the vendor's record."""
    if entry.field == "" and (payloads is None or entry.id not in payloads):
        return Rejection("", entry.reason)
    return parse_message(message, now)


def _waiting(entries: Sequence[Quarantined], now: datetime) -> list[Waiting]:
    """The waiting corrections, parsed (one that no longer parses stays where it is)."""
    waiting: list[Waiting] = []
    for entry in entries:
        message = parse_message(entry.message, now)
        if isinstance(message, AmendMoment | RetractMoment):
            waiting.append(Waiting(entry.id, message, entry.origin))
    return waiting


def _suppressed_keys(parsed: Sequence[Parsed], dropped: Collection[int]) -> set[WaitKey]:
    """What a correction waiting for a suppressed moment waits for: (tenant, id), (None, id)."""
    keys: set[WaitKey] = set()
    for i in dropped:
        p = parsed[i]
        if isinstance(p, RecordMoment):
            keys |= {(p.tenant, p.moment_id), (None, p.moment_id)}
    return keys


def _waiting_for_suppressed(waiting: Sequence[Quarantined], parsed: Sequence[Parsed],
                            dropped: Collection[int]) -> tuple[list[Quarantined], list[int]]:
    """The waiting corrections that still wait, and the quarantine ids of those that waited
    for a moment this batch suppressed (SPEC §6: it names an erased person, so it is never
    recorded): purged, as an erasure purges what names her, where they waited for good
    holding her personal data (an amendment's `set`)."""
    keys = _suppressed_keys(parsed, dropped)
    if not keys:
        return list(waiting), []
    return ([w for w in waiting if w.waits_for not in keys],
            [w.id for w in waiting if w.waits_for in keys])


def _suppress_waiting(verdicts: list[Verdict], parsed: Sequence[Parsed],
                      dropped: Collection[int]) -> list[Verdict]:
    """A correction of this batch that would wait for a moment the batch suppressed is
    suppressed with it (never quarantined: SPEC §6)."""
    keys = _suppressed_keys(parsed, dropped)
    if not keys:
        return verdicts
    return [Verdict(Outcome.SUPPRESSED, v.moment_id)
            if v.waits_for is not None and v.waits_for in keys else v for v in verdicts]


def _settled(waited: Sequence[tuple[int, Verdict]]
             ) -> tuple[list[int], list[tuple[int, str, str, WaitKey | None]]]:
    """Waiting corrections that went in (to leave the quarantine), and those rejected now
    for another reason (kept, no longer waiting)."""
    resolved = [qid for qid, v in waited if v.rejection is None]
    still: list[tuple[int, str, str, WaitKey | None]] = [
        (qid, v.rejection.field, v.rejection.reason, None)
        for qid, v in waited if v.rejection is not None]
    return resolved, still


def _merge_verdicts(parsed: Sequence[Message | Rejection], decided: Sequence[Verdict],
                    suppressed: Collection[int] = ()) -> list[Verdict]:
    """Verdicts for the whole batch: suppressed messages and parse rejections in place,
    decisions for the rest."""
    decisions: Iterator[Verdict] = iter(decided)
    return [
        Verdict(Outcome.SUPPRESSED, None if isinstance(p, Rejection | LinkCustomers)
                else p.moment_id)
        if i in suppressed else
        Verdict(Outcome.QUARANTINED, None, p) if isinstance(p, Rejection) else next(decisions)
        for i, p in enumerate(parsed)
    ]


Named = tuple[str | None, tuple[tuple[str, str], ...], str | None]
"""What a rejected message names: its tenant, its (tenant, customer id)s, a correction's
moment (`_named_by_rejected`)."""


class HasNames(Protocol):
    """A message as received (`Incoming`) or kept (`Quarantined`): its bytes, and what its
    source said it names besides them."""

    @property
    def message(self) -> bytes: ...

    @property
    def names(self) -> tuple[tuple[str, str], ...]: ...


def _named_by_rejected(message: bytes, names: tuple[tuple[str, str], ...] = ()) -> Named | None:
    """What a message that failed validation names, as far as it says: its tenant (None for
    a correction without one: `said_tenant`), the (tenant, customer id) of its `customer_id`
    or of a link's `customer_ids`, and the moment id a correction (amend, retract) names
    (`moment_ref`); with `names`, the customers its source said an unmapped record names
    (its tenant theirs)."""
    import orjson

    if names:
        return names[0][0], names, None
    try:
        data = orjson.loads(message)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    said = said_tenant(data)
    kind = data.get("type")
    tenant = said if isinstance(said, str) else None
    owner = tenant if tenant is not None else "default"
    customers: list[str] = []
    if isinstance(data.get("customer_id"), str):
        customers.append(data["customer_id"])
    if kind in ("link", "unlink") and isinstance(data.get("customer_ids"), list):
        customers += [c for c in data["customer_ids"] if isinstance(c, str)]
    target = None
    if kind in CORRECTIONS and isinstance(data.get("moment_id"), str):
        target = moment_ref(data["moment_id"])
    return tenant, tuple(dict.fromkeys((owner, c) for c in customers)), target
