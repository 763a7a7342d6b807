"""What recording a batch of messages does to the ledger (SPEC §2): a pure decision.

Given the streams already recorded for the moments a batch names (a moment is
named by its tenant and its id: SPEC §2 scopes ids by tenant), `decide`
says, for each message, whether it is recorded, a duplicate, or rejected (and
why), and which events to append. The store runs it inside its write
transaction and retries it when a concurrent writer got there first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, NamedTuple

from mypy_extensions import mypyc_attr

from mot.domain.events import (
    AnyMoment,
    CustomersLinked,
    CustomersUnlinked,
    EncodedMoment,
    LedgerEvent,
    LinkEvent,
    MomentAmended,
    MomentRecorded,
    MomentRetracted,
    StreamEvent,
    as_dict,
    made_in_c,
    new_moment_recorded,
)
from mot.domain.identity import MomentKey
from mot.domain.links import PairEvidence, is_repeat
from mot.domain.messages import (
    AmendMoment,
    Correction,
    LinkCustomers,
    Message,
    RecordMoment,
    Rejected,
    Rejection,
    RetractMoment,
    amended,
)
from mot.domain.timefmt import format_utc, parse_utc, to_micros


class AmbiguousMoment(ValueError):
    """A moment id named without its tenant, that more than one tenant has."""

    def __init__(self, moment_id: str) -> None:
        super().__init__(f"more than one tenant has a moment {moment_id}; give its tenant")
        self.moment_id = moment_id


class Outcome(Enum):
    """What happened to one message."""

    RECORDED = "recorded"
    AMENDED = "amended"
    RETRACTED = "retracted"
    LINKED = "linked"
    UNLINKED = "unlinked"
    DUPLICATE = "duplicate"
    QUARANTINED = "quarantined"
    SUPPRESSED = "suppressed"  # names an erased person or moment: dropped, counted (SPEC §6)

    # By identity (members are singletons, equal only to themselves), in C: Enum's own hashes
    # the name in a Python method, and a batch's outcomes are counted by hash, one per message.
    __hash__ = object.__hash__


@dataclass(slots=True)
class Stream:
    """What the ledger knows of one moment: its first content, current content, last version."""

    first: AnyMoment
    current: AnyMoment
    version: int
    retracted: bool = False
    # The `amendment_id`s recorded; frozen, so a new moment shares the empty one.
    amendment_ids: frozenset[str] = frozenset()
    latest: tuple[dict[str, Any], str] | None = None  # the latest amendment's (set, reason)


def same_json(a: Any, b: Any) -> bool:
    """Whether two decoded JSON values are the same value (SPEC §2, "same content").

    Python's `==` says `True == 1`: a boolean is not a number here. Numbers compare by
    value, so `1` and `1.0` are the same.
    """
    if type(a) is bool or type(b) is bool:
        return type(a) is type(b) and a == b
    if isinstance(a, dict):
        return (isinstance(b, dict) and a.keys() == b.keys()
                and all(same_json(value, b[key]) for key, value in a.items()))
    if isinstance(a, list):
        return (isinstance(b, list) and len(a) == len(b)
                and all(same_json(x, y) for x, y in zip(a, b, strict=True)))
    if isinstance(a, int | float):
        return isinstance(b, int | float) and a == b
    return type(a) is type(b) and a == b


def replay_stream(events: Iterable[LedgerEvent]) -> Stream | None:
    """Fold one moment's events (in version order) into its Stream."""
    stream: Stream | None = None
    for event in events:
        if isinstance(event, CustomersLinked | CustomersUnlinked):
            continue  # (a pair's events are not a moment's)
        if isinstance(event, MomentRecorded):
            stream = Stream(first=event.moment, current=event.moment, version=event.version)
        elif stream is not None:
            stream.version = event.version
            if isinstance(event, MomentAmended):
                stream.current = event.moment
                stream.latest = (event.set, event.reason)
                if event.amendment_id is not None:
                    stream.amendment_ids |= {event.amendment_id}
            else:
                stream.retracted = True
    return stream


WaitKey = tuple[str | None, str]
"""The moment a correction waits for: (tenant, moment id); no tenant: the id in any tenant."""


class Verdict(NamedTuple):
    """The decision for one message of the batch (a named tuple: one per message, made
    at a fraction of a frozen dataclass's cost).

    `waits_for` is set on a correction rejected only because its moment is not recorded:
    it waits in the quarantine and applies on its own when that moment is (SPEC §2).
    """

    outcome: Outcome
    moment_id: str | None = None
    rejection: Rejection | None = None
    waits_for: WaitKey | None = None


_new_verdict = made_in_c(Verdict)
_RECORDED = Outcome.RECORDED


@mypyc_attr(native_class=False)  # compiled, a frozen native class would not unpickle
@dataclass(frozen=True, slots=True)
class Pair:
    """What the ledger knows of one pair of customer ids: its evidence, its last version."""

    version: int
    evidence: tuple[PairEvidence, ...]


def replay_pair(events: Iterable[LedgerEvent]) -> Pair | None:
    """Fold one pair's events (in version order) into its Pair."""
    pair: Pair | None = None
    for event in events:
        if isinstance(event, CustomersLinked | CustomersUnlinked):
            evidence = PairEvidence("link" if type(event) is CustomersLinked else "unlink",
                                    to_micros(parse_utc(event.occurred_at)))
            pair = Pair(event.version, (*(pair.evidence if pair else ()), evidence))
    return pair


@mypyc_attr(native_class=False)  # compiled, a frozen native class would not unpickle
@dataclass(frozen=True, slots=True)
class Waiting:
    """A correction in the quarantine that waits for its moment (`Verdict.waits_for`)."""

    quarantine_id: int
    message: Correction
    origin: str


@mypyc_attr(native_class=False)  # compiled, a frozen native class would not unpickle
@dataclass(frozen=True, slots=True)
class Decision:
    """Events to append, a verdict per message in batch order, and what became of the
    waiting corrections the batch's new moments let in: (quarantine id, verdict)."""

    events: list[StreamEvent]
    verdicts: list[Verdict]
    waited: list[tuple[int, Verdict]]


def message_key(message: Message) -> tuple[str | None, str]:
    """(tenant, moment_id) of the moment a message names; the tenant is None for a
    correction that does not say (it names the moment with that id in whichever tenant
    has one). A link names no moment: use `pair_key`."""
    assert not isinstance(message, LinkCustomers)
    return message.tenant, message.moment_id


@dataclass(slots=True)
class _Wait:
    """A correction waiting in this decision: from the quarantine (`quarantine_id`) or from
    this batch (`index` of its verdict); quarantined ones arrived first."""

    message: Correction
    origin: str
    quarantine_id: int | None
    index: int

    @property
    def arrival(self) -> tuple[int, int]:
        return (0, self.quarantine_id) if self.quarantine_id is not None else (1, self.index)


def decide(
    messages: Sequence[tuple[Message, str]],
    streams: dict[MomentKey, Stream],
    now: datetime,
    pairs: Mapping[str, Pair] | None = None,
    waiting: Sequence[Waiting] = (),
) -> Decision:
    """Decide a batch of (message, origin) against the recorded `streams`.

    `streams` maps (tenant, moment id) to its Stream for every moment the batch
    names that is recorded (for a correction without `tenant`: in every tenant);
    `pairs` maps each link stream the batch names that is recorded to its Pair;
    neither is modified. Messages apply in batch order, so a moment and its
    amendment may arrive in the same batch. A correction of a moment not recorded
    waits (`Verdict.waits_for`); `waiting` holds those already in the quarantine for
    the moments the batch names, oldest first. When a moment is recorded, what waits
    for it applies right after it, in the order it arrived.
    """
    working = dict(streams)
    working_pairs: dict[str, Pair] = dict(pairs or {})
    tenants_of: dict[str, list[str]] | None = None  # built for the first correction without tenant
    recorded_at = format_utc(now)
    events: list[StreamEvent] = []
    verdicts: list[Verdict] = []
    waits: dict[WaitKey, list[_Wait]] = {}
    for w in waiting:
        key_of = (w.message.tenant, w.message.moment_id)
        waits.setdefault(key_of, []).append(_Wait(w.message, w.origin, w.quarantine_id, -1))
    waited: list[tuple[int, Verdict]] = []
    for message, origin in messages:
        if isinstance(message, LinkCustomers):
            verdicts.append(_link(message, working_pairs, events, recorded_at, origin))
            continue
        moment_id = message.moment_id
        try:
            if isinstance(message, RecordMoment):
                recorded: MomentKey = (message.tenant, moment_id)
                key: MomentKey | None = recorded
                verdict, event, stream = _record(message, working.get(recorded), recorded_at, origin)
                if stream is not None and tenants_of is not None:
                    tenants_of.setdefault(moment_id, []).append(message.tenant)
            else:
                if message.tenant is not None:
                    key = (message.tenant, moment_id)
                else:
                    if tenants_of is None:
                        tenants_of = {}
                        for tenant, recorded_id in working:
                            tenants_of.setdefault(recorded_id, []).append(tenant)
                    key = _only_tenant(moment_id, tenants_of.get(moment_id, ()))
                found = None if key is None else working.get(key)
                if found is None:
                    wait_key = (message.tenant, moment_id)
                    verdicts.append(Verdict(Outcome.QUARANTINED, moment_id, _unknown(message),
                                            wait_key))
                    waits.setdefault(wait_key, []).append(
                        _Wait(message, origin, None, len(verdicts) - 1))
                    continue
                verdict, event, stream = _correct(message, found, now, recorded_at, origin)
        except Rejected as rejected:
            verdicts.append(Verdict(Outcome.QUARANTINED, moment_id, rejected.rejection))
            continue
        if stream is not None:
            assert key is not None
            working[key] = stream
        if event is not None:
            events.append(event)
        verdicts.append(verdict)
        if waits and verdict.outcome is Outcome.RECORDED:
            assert key is not None
            ready = waits.pop(key, []) + waits.pop((None, moment_id), [])
            for wait in sorted(ready, key=lambda w: w.arrival):
                try:
                    verdict, event, stream = _correct(wait.message, working[key], now,
                                                      recorded_at, wait.origin)
                except Rejected as rejected:
                    verdict, event, stream = Verdict(
                        Outcome.QUARANTINED, moment_id, rejected.rejection), None, None
                if stream is not None:
                    working[key] = stream
                if event is not None:
                    events.append(event)
                if wait.quarantine_id is not None:
                    waited.append((wait.quarantine_id, verdict))
                else:
                    verdicts[wait.index] = verdict
    return Decision(events, verdicts, waited)


_Step = tuple[Verdict, StreamEvent | None, Stream | None]


def _correct(message: Correction, stream: Stream, now: datetime, recorded_at: str,
             origin: str) -> _Step:
    if isinstance(message, AmendMoment):
        return _amend(message, stream, now, recorded_at, origin)
    return _retract(message, stream, recorded_at, origin)


def _unknown(message: Correction) -> Rejection:
    verb = "amended" if isinstance(message, AmendMoment) else "retracted"
    return Rejection(
        "moment_id",
        f"no recorded moment {message.moment_id} to be {verb} (it waits in the quarantine "
        "and applies on its own when the moment is recorded)",
    )


def _link(message: LinkCustomers, pairs: dict[str, Pair], events: list[StreamEvent],
          recorded_at: str, origin: str) -> Verdict:
    """A link or unlink of a pair: a new version of its stream, or the same message again."""
    pair = pairs.get(message.link_id)
    evidence = message.evidence
    if pair is not None and is_repeat(evidence, pair.evidence):
        return Verdict(Outcome.DUPLICATE)
    version = 1 if pair is None else pair.version + 1
    kind = CustomersLinked if message.type == "link" else CustomersUnlinked
    event: LinkEvent = kind(message.link_id, version, message.tenant, message.customer_ids,
                            message.occurred_at, message.reason, recorded_at, origin)
    events.append(event)
    pairs[message.link_id] = Pair(version, (*(pair.evidence if pair else ()), evidence))
    return Verdict(Outcome.LINKED if message.type == "link" else Outcome.UNLINKED)


def _only_tenant(moment_id: str, tenants: Sequence[str]) -> MomentKey | None:
    """The moment a correction without `tenant` names: the only one with that id."""
    if len(tenants) > 1:
        raise Rejected(Rejection(
            "tenant", f"required: more than one tenant has a moment {moment_id}; "
            "give the tenant whose moment this corrects"))
    return (tenants[0], moment_id) if tenants else None


def _record(message: RecordMoment, stream: Stream | None, recorded_at: str, origin: str) -> _Step:
    moment_id = message.moment_id
    if stream is None:  # a new moment: most of what a batch holds (its tuples made in C)
        moment = message.moment
        event = new_moment_recorded((moment_id, 1, moment, recorded_at, origin, message.tenant))
        return (_new_verdict((_RECORDED, moment_id, None, None)), event,
                Stream(moment, moment, 1))
    first, moment = stream.first, message.moment
    if (type(first) is EncodedMoment and type(moment) is EncodedMoment
            and first.json == moment.json):
        return Verdict(Outcome.DUPLICATE, moment_id), None, None
    first, moment = as_dict(first), as_dict(moment)
    if same_json(first, moment):
        return Verdict(Outcome.DUPLICATE, moment_id), None, None
    differing = sorted(
        name for name in first.keys() | moment.keys()
        if name not in first or name not in moment or not same_json(first[name], moment[name])
    )
    raise Rejected(Rejection(
        "moment_id",
        f"{moment_id} is already recorded with other content (differs in: {', '.join(differing)});"
        " a moment is never overwritten: send an amend",
    ))


def _amend(
    message: AmendMoment, stream: Stream | None, now: datetime, recorded_at: str, origin: str
) -> _Step:
    moment_id = message.moment_id
    # An amendment already recorded is a duplicate even once the moment is retracted:
    # re-importing a file that amends and then retracts must change nothing.
    if stream is not None and _repeats(message, stream):
        return Verdict(Outcome.DUPLICATE, moment_id), None, None
    live = _live(stream, moment_id, "amended")
    result = amended(live.current, message.set, now)
    version = live.version + 1
    event = MomentAmended(moment_id, version, message.set, message.reason, result, recorded_at,
                          origin, message.amendment_id)
    ids = live.amendment_ids
    if message.amendment_id is not None:
        ids = ids | {message.amendment_id}
    updated = Stream(live.first, result, version, False, ids, (message.set, message.reason))
    return Verdict(Outcome.AMENDED, moment_id), event, updated


def _repeats(message: AmendMoment, stream: Stream) -> bool:
    """Whether the amendment is one already recorded, sent again (SPEC §2): the same
    `amendment_id`, or, without one, the same `set` and `reason` as the latest amendment
    (an earlier one repeated is a new change back: A, B, A applies three times)."""
    if message.amendment_id is not None:
        return message.amendment_id in stream.amendment_ids
    latest = stream.latest
    return (latest is not None and latest[1] == message.reason
            and same_json(latest[0], message.set))


def _retract(message: RetractMoment, stream: Stream | None, recorded_at: str, origin: str) -> _Step:
    moment_id = message.moment_id
    if stream is not None and stream.retracted:
        return Verdict(Outcome.DUPLICATE, moment_id), None, None
    live = _live(stream, moment_id, "retracted")
    version = live.version + 1
    current = live.current
    event = MomentRetracted(
        moment_id, version, message.reason, current["tenant"], current["customer_id"],
        recorded_at, origin,
    )
    updated = Stream(live.first, current, version, True, live.amendment_ids, live.latest)
    return Verdict(Outcome.RETRACTED, moment_id), event, updated


def _live(stream: Stream | None, moment_id: str, verb: str) -> Stream:
    if stream is None:
        raise Rejected(Rejection(
            "moment_id",
            f"no recorded moment {moment_id} to be {verb} (replay this from the quarantine "
            "once the moment is recorded)",
        ))
    if stream.retracted:
        raise Rejected(Rejection("moment_id", f"moment {moment_id} was retracted; it cannot be {verb}"))
    return stream

