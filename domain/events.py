"""The ledger's events, named in the past tense; immutable.

Each moment is one stream (its id is `moment_stream_id(tenant, moment_id)`:
moment ids are scoped by tenant): version 1 is its `MomentRecorded`, later
versions its amendments and its retraction. Each pair of linked customer ids
is one stream too (`link_stream_id`): its links and unlinks. The
store's uniqueness on (stream, version) is what makes a duplicate or a
concurrent writer harmless.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple, TypeVar, cast

import orjson
from mypy_extensions import mypyc_attr

from mot.domain.personal import join_personal

Moment = dict[str, Any]

N = TypeVar("N", bound=tuple[Any, ...])


def made_in_c(cls: type[N]) -> Callable[[tuple[Any, ...]], N]:
    """A maker of the named tuple `cls` from a tuple of every one of its fields, in order
    (defaults are not filled in): `tuple.__new__` bound to it, which runs in C. A named
    tuple's own constructor is a Python function, a frame per object; the record path
    makes several of them for every message (bench/NOTES.md)."""
    return cast(Callable[[tuple[Any, ...]], N], partial(tuple.__new__, cls))


class EncodedMoment(Mapping[str, Any]):
    """A normalised moment held as its JSON, decoded only if something reads it.

    A bulk import validates moments in worker processes, which hand them over as
    JSON. Recording a new moment never reads its fields, so the ledger stores the
    JSON as it came; only a duplicate check or an amendment in the same batch
    decodes it. Immutable, and equal to the dict it encodes.

    For a ledger that seals personal fields the worker hands the moment over split
    instead, `sealable`: (the moment without its personal fields as JSON, those fields as
    a box's plaintext, its customer id), `domain/personal.py` `sealable`; the ledger stores
    a new moment from the two parts, encrypting only, and `json` is made if asked for.
    """

    __slots__ = ("_decoded", "_json", "sealable", "stream_id")

    def __init__(self, json: bytes | None, sealable: tuple[bytes, bytes, str] | None = None,
                 stream_id: str | None = None) -> None:
        assert json is not None or sealable is not None
        self._json = json
        self.sealable = sealable
        # The id of the moment's stream (`moment_stream_id`), when a parse worker made it:
        # a SHA-1 the recording process then need not compute.
        self.stream_id = stream_id
        self._decoded: Moment | None = None

    @property
    def json(self) -> bytes:
        if self._json is None:
            self._json = orjson.dumps(self.decoded())
        return self._json

    def decoded(self) -> Moment:
        if self._decoded is None:
            if self._json is not None:
                self._decoded = orjson.loads(self._json)
            else:
                assert self.sealable is not None
                plain, personal, _ = self.sealable
                self._decoded = join_personal(orjson.loads(plain), orjson.loads(personal)["m"])
        return self._decoded

    def __getitem__(self, name: str) -> Any:
        return self.decoded()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.decoded())

    def __len__(self) -> int:
        return len(self.decoded())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, EncodedMoment):
            return ((self._json is not None and self._json == other._json)
                    or (self.sealable is not None and self.sealable == other.sealable)
                    or self.decoded() == other.decoded())
        return self.decoded() == other

    __hash__ = None  # type: ignore[assignment]  # equal to a dict, so unhashable as one

    def __repr__(self) -> str:
        return f"EncodedMoment({self.json!r})"


AnyMoment = Moment | EncodedMoment
"""A moment as a dict, or as the JSON a worker process encoded it to."""


def as_dict(moment: AnyMoment) -> Moment:
    """The moment as a dict (decoding it if it is held as JSON)."""
    return moment.decoded() if type(moment) is EncodedMoment else moment  # type: ignore[return-value]


class MomentRecorded(NamedTuple):
    """A moment of truth entered the ledger (a named tuple: one per moment recorded, made
    at a fraction of a frozen dataclass's cost; immutable all the same)."""

    moment_id: str
    version: int
    moment: AnyMoment
    recorded_at: str
    origin: str
    tenant: str  # the moment's (also in `moment`, which may be JSON not decoded yet)


new_moment_recorded = made_in_c(MomentRecorded)


@mypyc_attr(native_class=False)  # compiled, a frozen native class would not unpickle
@dataclass(frozen=True, slots=True)
class MomentAmended:
    """Some fields of a recorded moment were corrected; `moment` is the result."""

    moment_id: str
    version: int
    set: dict[str, Any]
    reason: str
    moment: Moment
    recorded_at: str
    origin: str
    amendment_id: str | None = None  # when the amendment named itself (SPEC §2)

    @property
    def tenant(self) -> str:
        return str(self.moment["tenant"])


@mypyc_attr(native_class=False)  # compiled, a frozen native class would not unpickle
@dataclass(frozen=True, slots=True)
class MomentRetracted:
    """A recorded moment was withdrawn from every projection (the log keeps it)."""

    moment_id: str
    version: int
    reason: str
    tenant: str
    customer_id: str
    recorded_at: str
    origin: str


@mypyc_attr(native_class=False)  # compiled, a frozen native class would not unpickle
@dataclass(frozen=True, slots=True)
class CustomersLinked:
    """Two customer ids of a tenant were said to be one person (SPEC §2, "Links").

    A pair's links and unlinks form one stream, `link_stream_id(tenant, *customer_ids)`
    (`domain/links.py`); the pair's state is that of its link or unlink with the
    latest `occurred_at` (at equal times an unlink wins), whatever the order of arrival.
    """

    link_id: str  # the pair's stream id
    version: int
    tenant: str
    customer_ids: tuple[str, str]  # in code-point order
    occurred_at: str  # RFC 3339 in UTC, to the microsecond: when the evidence was established
    reason: str
    recorded_at: str
    origin: str


@mypyc_attr(native_class=False)  # compiled, a frozen native class would not unpickle
@dataclass(frozen=True, slots=True)
class CustomersUnlinked:
    """Two customer ids of a tenant were said not to be one person: a link taken back."""

    link_id: str
    version: int
    tenant: str
    customer_ids: tuple[str, str]
    occurred_at: str
    reason: str
    recorded_at: str
    origin: str


@mypyc_attr(native_class=False)  # compiled, a frozen native class would not unpickle
@dataclass(frozen=True, slots=True)
class PersonErased:
    """A person was erased on request (SPEC §6): the receipt's facts, and no personal data.

    Its stream is the erasure's, `erasure_stream_id(tenant, erasure)`. It changes no
    projection: the erased moments' events open as the erasure's pseudo customer id once
    their keys are destroyed, so a rebuild reads past it and gives the same sums.
    """

    erasure_id: str  # the erasure's stream id
    version: int
    tenant: str
    erasure: int  # the receipt's number (`mot erasures list`)
    customer_ids_with_moments: int
    customer_ids_without_moments: int
    moments: int
    digest: str  # HMAC-SHA256 of the erased ids under the tenant's secret: confirms no guess
    recorded_at: str
    origin: str


MomentEvent = MomentRecorded | MomentAmended | MomentRetracted
"""An event of a moment's stream."""

LinkEvent = CustomersLinked | CustomersUnlinked
"""An event of a pair's stream."""

StreamEvent = MomentEvent | LinkEvent
"""What an import records: a moment's events and a pair's."""

LedgerEvent = StreamEvent | PersonErased
"""What the notification log carries: a moment's events, a pair's, and erasures."""
