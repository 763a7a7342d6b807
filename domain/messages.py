"""From raw bytes to a validated, normalised message, or a rejection that names the field.

This is the whole of SPEC §2's per-message checking. It is pure: the time of
recording is passed in, so the 24-hour rule is testable and replayable.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from difflib import get_close_matches
from typing import Any, Final, NamedTuple, get_args

import orjson
from mypy_extensions import mypyc_attr
from pydantic import ValidationError

from mot.domain.currencies import ISO_4217
from mot.domain.erasure import RESERVED_PROBLEM, RESERVED_START
from mot.domain.events import AnyMoment, made_in_c
from mot.domain.identity import derived_moment_id
from mot.domain.links import LinkType, PairEvidence, link_stream_id
from mot.domain.schema import (
    AMENDABLE_FIELDS,
    MAX_CUSTOMER_ID,
    MAX_REACH,
    MAX_TENANT,
    AmendIn,
    LinkIn,
    MomentIn,
    RetractIn,
    SourceRef,
    holds_huge_float,
    inexact_integer,
    number_as_sent,
)
from mot.domain.timefmt import format_utc, to_micros
from mot.domain.timefmt import utc_now as utc_now  # re-exported: the time of recording
from mot.domain.vocabulary import (
    IMMUTABLE_FIELDS,
    KINDS_BY_DIRECTION,
    AskType,
    Channel,
    Function,
)

Moment = dict[str, Any]
"""A normalised moment: defaults applied, ids canonical, `occurred_at` in UTC text."""

MAX_FUTURE: Final = timedelta(hours=24)
MAX_ATTRIBUTES_BYTES: Final = 16 * 1024
REFERENCE_FIELDS: Final = ("in_reply_to", "shares")
UNKNOWN_FIELD: Final = "unknown field (not a field of wire format v1)"
TOP_FIELDS: Final = (frozenset(MomentIn.model_fields) | set(AmendIn.model_fields)
                     | set(LinkIn.model_fields))
SOURCE_FIELDS: Final = frozenset(SourceRef.model_fields)


class RecordMoment(NamedTuple):
    """Record this moment (a new one, or a duplicate of a recorded one).

    A named tuple, not a frozen dataclass: one is made per moment of every bulk path, and
    a frozen dataclass sets each field through `object.__setattr__` (NamedTuple: one call)."""

    moment_id: str
    moment: AnyMoment
    tenant: str


new_record_moment = made_in_c(RecordMoment)


@mypyc_attr(native_class=False)  # compiled, a frozen native class would not unpickle
@dataclass(frozen=True, slots=True)
class AmendMoment:
    """Change some fields of a recorded moment; `set` is checked against it when applied."""

    moment_id: str
    set: dict[str, Any]
    reason: str
    tenant: str | None = None  # None: the moment with that id in whichever tenant has one
    amendment_id: str | None = None


@mypyc_attr(native_class=False)  # compiled, a frozen native class would not unpickle
@dataclass(frozen=True, slots=True)
class RetractMoment:
    """Remove a recorded moment from every projection."""

    moment_id: str
    reason: str
    tenant: str | None = None


@mypyc_attr(native_class=False)  # compiled, a frozen native class would not unpickle
@dataclass(frozen=True, slots=True)
class LinkCustomers:
    """Say that two customer ids of a tenant are one person (`link`) or not (`unlink`)."""

    type: LinkType
    tenant: str
    customer_ids: tuple[str, str]  # in code-point order
    occurred_at: str  # RFC 3339 in UTC, to the microsecond
    occurred_us: int  # the same instant, in microseconds since the epoch
    reason: str
    link_id: str  # the pair's stream: `link_stream_id(tenant, *customer_ids)`

    @property
    def evidence(self) -> PairEvidence:
        return PairEvidence(self.type, self.occurred_us)


Correction = AmendMoment | RetractMoment
Message = RecordMoment | AmendMoment | RetractMoment | LinkCustomers


@mypyc_attr(native_class=False)  # compiled, a frozen native class would not unpickle
@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message cannot be recorded: `field` is a dotted path, or "" for the whole message.

    A message with several errors is one Rejection: the first in `field` and `problem`,
    the rest in `others`; `reason` names them all ("channel: ...; kind: ...").
    """

    field: str
    problem: str
    others: tuple[Rejection, ...] = ()

    @property
    def reason(self) -> str:
        first = f"{self.field}: {self.problem}" if self.field else self.problem
        if not self.others:
            return first
        return "; ".join([first, *[other.reason for other in self.others]])

    @property
    def problems(self) -> tuple[Rejection, ...]:
        """Each error on its own, the first one first."""
        return (Rejection(self.field, self.problem), *self.others)


def _combined(problems: list[Rejection]) -> Rejection:
    """One Rejection naming every problem (each field once, in the order found)."""
    seen: set[str] = set()
    unique: list[Rejection] = []
    for problem in problems:
        for single in problem.problems:
            if single.reason not in seen:
                seen.add(single.reason)
                unique.append(single)
    return Rejection(unique[0].field, unique[0].problem, tuple(unique[1:]))


class Rejected(Exception):
    """Raised inside the domain when a message breaks a rule; carries the Rejection."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(rejection.reason)
        self.rejection = rejection


def parse_message(raw: bytes | str, now: datetime) -> Message | Rejection:
    """Parse one wire message (a JSON object) recorded at `now`."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        return Rejection("", _json_problem(raw, error))
    # JSON can carry U+0000 only escaped; PostgreSQL text cannot hold it at all.
    if (b"\\u0000" in raw) if isinstance(raw, bytes) else ("\\u0000" in raw):
        where = nul_path(data)
        if where is not None:
            return Rejection(where, "contains a NUL character (U+0000), which text fields cannot hold")
    twice = duplicate_field(raw, data)
    if twice is not None:
        return Rejection(twice, GIVEN_TWICE)
    parsed = validate_message(data, now)
    # orjson reads an integer beyond 64 bits as a float of that size: only then is the
    # message read again exactly (reading every message twice would slow imports).
    float_id = _float_reference(data, parsed)
    if type(parsed) is Rejection or float_id is not None or _may_hold_huge_integer(parsed):
        inexact = inexact_integer(raw)
        if inexact is not None:
            return Rejection(inexact[0], f"{inexact[1]} is an integer beyond 64 bits, which "
                             "cannot be kept exactly; send it as a string")
        if float_id is not None:
            return _float_id_rejection(float_id, parsed, data, raw)
    if type(parsed) is Rejection:
        return _number_as_sent(parsed, data, raw)
    return parsed


def _may_hold_huge_integer(message: Message | Rejection) -> bool:
    """Whether a field that keeps any number (`attributes`, `value`, an amendment's `set`)
    holds a float of 2**63 or more in size, which is what orjson makes of a larger integer."""
    if type(message) is RecordMoment:
        moment = message.moment
        return holds_huge_float(moment.get("attributes")) or holds_huge_float(moment.get("value"))
    return type(message) is AmendMoment and holds_huge_float(message.set)


def _float_reference(data: Any, parsed: Message | Rejection) -> str | None:
    """The field (`source.id`, `in_reply_to.id`, `shares.id`, or one of them in an amendment's
    `set`) whose id is a number with a fraction or an exponent, or None (the common case: three
    dict lookups). orjson reads an integer beyond 64 bits as such a float too."""
    if type(data) is not dict:
        return None
    for name in ("source", "in_reply_to", "shares"):
        reference = data.get(name)
        if type(reference) is dict and type(reference.get("id")) is float:
            return f"{name}.id"
    if type(parsed) is AmendMoment:  # only then can `set` hold a reference
        changes = data["set"]
        for name in ("source", "in_reply_to", "shares"):
            reference = changes.get(name)
            if type(reference) is dict and type(reference.get("id")) is float:
                return f"set.{name}.id"
    return None


def _float_id_rejection(field: str, parsed: Message | Rejection, data: Any,
                        raw: bytes | str) -> Rejection:
    """SPEC §2 makes an id text; an integer is taken as its digits, but `1e2` or `1.5` would
    be kept as the text '100.0' or '1.5', which is not what was sent and may not be what the
    source system calls it: quarantined naming the field (with any other problem found)."""
    sent = number_as_sent(raw, field) or "the number"
    mine = Rejection(field, f"{sent} is a number that is not a plain integer (a fraction or an "
                     "exponent), which an id does not take; send it as a string")
    if type(parsed) is Rejection:
        return _combined([mine, _number_as_sent(parsed, data, raw)])
    return mine


def _number_as_sent(rejection: Rejection, data: Any, raw: bytes | str) -> Rejection:
    """The rejection, showing each number the way the message wrote it (`1e32`, not
    `1e+32`)."""
    if not rejection.others:
        return _one_number_as_sent(rejection, data, raw)
    return _combined([_one_number_as_sent(p, data, raw) for p in rejection.problems])


def _one_number_as_sent(rejection: Rejection, data: Any, raw: bytes | str) -> Rejection:
    value = data
    for part in rejection.field.split(".") if rejection.field else ():
        value = value.get(part) if isinstance(value, dict) else None
    if type(value) is not float:
        return rejection
    shown, sent = _short(value), number_as_sent(raw, rejection.field)
    if sent is None or sent == shown or not rejection.problem.endswith(f"got {shown}"):
        return rejection
    return Rejection(rejection.field, rejection.problem[: -len(shown)] + sent)


GIVEN_TWICE: Final = ("is given more than once in its object (JSON keeps only the last one, "
                      "so the others would be lost); send each field once")
_KEY_END = re.compile(rb'"[ \t\n\r]*:')


def duplicate_field(raw: bytes | str, data: Any) -> str | None:
    """The dotted path of a field that an object of the JSON text `raw` gives twice (`data` is
    its decoded value, in which the last of them won), or None when every field is given once.

    Almost every message is cleared without reading it in Python, in one of two ways:
    - `raw` is exactly the compact JSON orjson writes for `data` (what orjson, serde_json,
      JSON.stringify and most encoders send): an encoder writes each name of a dict once.
    - Every string of `raw`, a name or a value, is two quotes (an escaped quote inside one
      adds a third): `raw` holds at least twice as many quotes as it has names and string
      values, and `data` holds all its string values and its names less the repeated ones.
      So when the quotes are twice `data`'s names and strings, no name is repeated; this
      holds for any spacing.
    Only otherwise (a repeat, an escaped quote) is the text read again to find it."""
    text = raw if isinstance(raw, bytes) else raw.encode()  # text: a rare caller's
    try:
        if orjson.dumps(data) == text:
            return None
    except orjson.JSONEncodeError:  # nested past orjson's encoding depth: counted below
        pass
    names, strings = _names_in(data)
    if text.count(b'"') == 2 * (names + strings):
        return None
    # Each name ends in a quote and a colon, maybe with spaces between: at least as many of
    # those as names.
    if len(_KEY_END.findall(text)) == names:
        return None
    return _repeated_name(text)


def _names_in(value: Any) -> tuple[int, int]:
    """How many field names the objects in `value` hold and how many strings it holds as
    values, nested ones included (a loop, not recursion: JSON may nest deeper than Python's
    recursion limit)."""
    names, strings, stack = 0, 0, [value]
    while stack:
        item = stack.pop()
        if type(item) is dict:
            names += len(item)
            items: Any = item.values()
        elif type(item) is list:
            items = item
        else:
            strings += type(item) is str
            continue
        for nested in items:
            kind = type(nested)
            if kind is str:
                strings += 1
            elif kind is dict or kind is list:
                stack.append(nested)
    return names, strings


class _Repeated(dict[str, Any]):
    """An object in which a name came twice (`_repeated_name`), and the first such name."""

    repeated = ""


def _repeated_name(raw: bytes) -> str | None:
    """The dotted path of the first name given twice in one object of `raw`, or None."""
    import json

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for name, value in items:
            if name in seen:
                repeated = _Repeated(items)
                repeated.repeated = name
                return repeated
            seen[name] = value
        return seen

    try:
        value = json.loads(raw, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return None
    for item, path, _ in _in_document_order(value):
        if isinstance(item, _Repeated):
            return f"{path}.{item.repeated}" if path else item.repeated
    return None


def nul_path(value: Any) -> str | None:
    """The dotted path of the first string (or key) holding U+0000, if any, in document
    order; a key's U+0000 written `\\u0000`, as JSON writes it (the path is the rejection's
    field, and PostgreSQL cannot store the character in the quarantine either)."""
    for item, path, key in _in_document_order(value):
        if (key is not None and "\x00" in key) or (isinstance(item, str) and "\x00" in item):
            return path.replace("\x00", "\\u0000")
    return None


def _in_document_order(value: Any) -> Iterator[tuple[Any, str, str | None]]:
    """Every value within a decoded JSON value, itself first, with its dotted path and the
    name it is given under (None in a list and at the top), in document order. A stack, not
    recursion: JSON nested a thousand deep is valid input."""
    stack: list[tuple[Any, str, str | None]] = [(value, "", None)]
    while stack:
        item, path, name = stack.pop()
        yield item, path, name
        # Loops, not stack.extend of a generator over reversed(): mypyc (the compiled build)
        # fails on that form with an internal error.
        if isinstance(item, dict):
            for k, v in reversed(item.items()):
                stack.append((v, f"{path}.{k}" if path else str(k), k))
        elif isinstance(item, list):
            for i in range(len(item) - 1, -1, -1):
                stack.append((item[i], f"{path}[{i}]", None))


def validate_message(data: Any, now: datetime) -> Message | Rejection:
    """Validate one decoded wire message."""
    if not isinstance(data, dict):
        return Rejection("", f"expected a JSON object, got {_json_type(data)}")
    kind = data.get("type")
    try:
        if kind is None or kind == "moment":
            return _moment(data, now)
        if kind == "amend":
            return _amendment(data)
        if kind == "retract":
            retract = RetractIn.model_validate(data)
            return RetractMoment(str(retract.moment_id), retract.reason, retract.tenant)
        if kind == "link" or kind == "unlink":
            return _link(data, now)
    except ValidationError as error:
        return _rejection_from(error, data, now)
    except Rejected as error:
        return error.rejection
    return Rejection("type", "expected 'moment', 'amend', 'retract', 'link' or 'unlink', got "
                     f"{_short(kind)}" + _did_you_mean(kind, MESSAGE_TYPES))


MESSAGE_TYPES: Final = ("moment", "amend", "retract", "link", "unlink")


def _moment(data: dict[str, Any], now: datetime) -> RecordMoment:
    moment = well_formed_moment(data, now)
    if moment is None:
        moment = normalise(MomentIn.model_validate(data), now)
    return new_record_moment((moment["moment_id"], moment, moment["tenant"]))


# -- the common shape, checked without pydantic ---------------------------------------------
# Nearly every moment a bulk path reads is well formed, in a narrower shape than the wire
# format allows (ids in canonical form, timestamps with `T` and an offset). Checking that
# shape directly gives the moment `normalise(MomentIn.model_validate(data))` gives, at a
# fraction of the cost; any other message (an error, an unusual but valid form) goes the
# full way, which phrases every error. tests/test_fast_moment.py holds the two to the same
# results.
_MOMENT_FIELDS: Final = frozenset(MomentIn.model_fields)
_REFERENCE_FIELDS: Final = frozenset({"system", "id"})
_CANONICAL_UUID: Final = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_PLAIN_TIMESTAMP: Final = re.compile(  # RFC 3339 in a form pydantic and Python read alike
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])")
_CHANNELS: Final = frozenset(get_args(Channel))
_FUNCTIONS: Final = frozenset(get_args(Function))
_ASK_TYPES: Final = frozenset(get_args(AskType))
_KINDS: Final = {direction: frozenset(kinds) for direction, kinds in KINDS_BY_DIRECTION.items()}


def _plain_text(value: Any, longest: int) -> bool:
    return type(value) is str and 0 < len(value) <= longest


def _plain_number(value: Any) -> bool:
    # strict float: an int or a float, never a bool; finite
    return type(value) is int or (type(value) is float and math.isfinite(value))


def _plain_reference(tenant: str, value: Any) -> str | None:
    """A reference in canonical form as the id it names; None when it is not one."""
    if type(value) is str:
        return value if _CANONICAL_UUID.fullmatch(value) else None
    if (type(value) is dict and value.keys() == _REFERENCE_FIELDS
            and _plain_text(value["system"], 128) and _plain_text(value["id"], 512)):
        return derived_moment_id(tenant, value["system"], value["id"])
    return None


def well_formed_moment(data: dict[str, Any], now: datetime) -> Moment | None:
    """The normalised moment when `data` is a moment of the common well-formed shape;
    None when it is not (an error, or a valid form this leaves to pydantic)."""
    if not _MOMENT_FIELDS.issuperset(data):  # each name looked up in C (`keys() <=` compares)
        return None
    get = data.get
    tenant = get("tenant", "default")
    customer_id = get("customer_id")
    occurred_at = get("occurred_at")
    channel, direction, kind = get("channel"), get("direction"), get("kind")
    function = get("function", "other")
    if not (type(tenant) is str and 0 < len(tenant) <= MAX_TENANT
            and type(customer_id) is str and 0 < len(customer_id) <= MAX_CUSTOMER_ID
            and type(occurred_at) is str and _PLAIN_TIMESTAMP.fullmatch(occurred_at)
            and type(channel) is str and channel in _CHANNELS
            and type(direction) is str and direction in _KINDS
            and type(kind) is str and kind in _KINDS[direction]
            and type(function) is str and function in _FUNCTIONS
            and not customer_id.startswith(RESERVED_START)):
        return None
    if get("type") not in (None, "moment"):
        return None
    source = get("source")
    if source is not None and not (
            type(source) is dict and source.keys() == _REFERENCE_FIELDS
            and _plain_text(source["system"], 128) and _plain_text(source["id"], 512)):
        return None
    moment_id = get("moment_id")
    if moment_id is not None:
        if type(moment_id) is not str or not _CANONICAL_UUID.fullmatch(moment_id):
            return None
    elif source is not None:
        moment_id = derived_moment_id(tenant, source["system"], source["id"])
    else:
        return None
    # The instant: read once. Without a fraction or an offset, UTC text is kept as sent.
    try:
        when = datetime.fromisoformat(occurred_at)
    except ValueError:  # 30 February, say
        return None
    if occurred_at[-1] == "Z":
        if when - now > MAX_FUTURE:
            return None
        if len(occurred_at) != 20:
            occurred_at = when.replace(tzinfo=None).isoformat() + "Z"
    else:
        try:
            when = when.astimezone(UTC)
        except OverflowError:
            return None
        if when - now > MAX_FUTURE:
            return None
        occurred_at = when.replace(tzinfo=None).isoformat() + "Z"
    out: Moment = {"moment_id": moment_id, "tenant": tenant, "customer_id": customer_id,
                   "occurred_at": occurred_at, "channel": channel, "direction": direction,
                   "kind": kind, "function": function}
    actor = get("actor")
    if actor is not None:
        if type(actor) is not str or len(actor) > 256:
            return None
        out["actor"] = actor
    ask_type = get("ask_type")
    if kind == "ask":
        if ask_type is None:
            ask_type = "other"
        elif type(ask_type) is not str or ask_type not in _ASK_TYPES:
            return None
        out["ask_type"] = ask_type
    elif ask_type is not None:
        return None
    sentiment = get("sentiment")
    if sentiment is not None:
        if not (_plain_number(sentiment) and -1 <= sentiment <= 1):
            return None
        out["sentiment"] = float(sentiment) + 0.0
    reach = get("reach", 0)
    if type(reach) is not int or not 0 <= reach <= MAX_REACH:
        return None
    out["reach"] = reach
    value = get("value")
    if value is not None:
        if not (_plain_number(value) and value >= 0):
            return None
        out["value"] = float(value) + 0.0
    currency = get("currency")
    if currency is not None:
        if type(currency) is not str or currency.upper() not in ISO_4217:
            return None
        out["currency"] = currency.upper()
    if (get("shares") is not None) != (kind == "share"):
        return None
    for name in REFERENCE_FIELDS:  # in_reply_to, shares
        reference = get(name)
        if reference is not None:
            reference = _plain_reference(tenant, reference)
            if reference is None:
                return None
            out[name] = reference
    url = get("url")
    if url is not None:
        if not _plain_text(url, 2048):
            return None
        out["url"] = url
    if source is not None:
        out["source"] = {"system": source["system"], "id": source["id"]}
    attributes = get("attributes")
    if attributes is not None:
        if type(attributes) is not dict or _attributes_problem(attributes) is not None:
            return None
        out["attributes"] = dict(attributes)
    return out


def _amendment(data: dict[str, Any]) -> AmendMoment:
    amend = AmendIn.model_validate(data)
    problems = [problem for name in amend.set if (problem := _set_problem(name)) is not None]
    if problems:
        raise Rejected(_combined(problems))
    return AmendMoment(str(amend.moment_id), amend.set, amend.reason, amend.tenant,
                       None if amend.amendment_id is None else str(amend.amendment_id))


def _link(data: dict[str, Any], now: datetime) -> LinkCustomers:
    link = LinkIn.model_validate(data)
    first, second = link.customer_ids
    if first == second:
        raise Rejected(Rejection(
            "customer_ids", f"expected two different customer ids, got {_short(first)} twice"))
    occurred = now if link.occurred_at is None else link.occurred_at
    problems = _rules(None, None, None, None, occurred, now)
    problems += [Rejection(f"customer_ids[{i}]", RESERVED_PROBLEM)
                 for i, cid in enumerate(link.customer_ids) if cid.startswith(RESERVED_START)]
    if problems:
        raise Rejected(_combined(problems))
    pair = (first, second) if first < second else (second, first)
    # The microseconds are those of the text kept: a finer fraction is dropped, not rounded.
    occurred_at = format_utc(occurred)
    return LinkCustomers(link.type, link.tenant, pair, occurred_at, to_micros(occurred),
                         link.reason, link_stream_id(link.tenant, *pair))


def _set_problem(name: str) -> Rejection | None:
    """Why an amendment's `set` may not name this field, if it may not."""
    if name in IMMUTABLE_FIELDS:
        return Rejection(
            f"set.{name}",
            "cannot be amended (moment_id, tenant, customer_id, direction and source are "
            "fixed; retract the moment and record a new one instead)",
        )
    if name not in AMENDABLE_FIELDS:
        return Rejection(f"set.{name}", _unknown_field(name, AMENDABLE_FIELDS))
    return None


def normalise(m: MomentIn, now: datetime) -> Moment:
    """Apply the cross-field rules and defaults; return the moment as stored."""
    problems = _rules(m.kind, m.direction, m.ask_type, m.shares is not None, m.occurred_at, now)
    tenant = m.tenant
    if m.moment_id is not None:
        moment_id = str(m.moment_id)
    elif m.source is not None:
        moment_id = derived_moment_id(tenant, m.source.system, m.source.id)
    else:
        moment_id = ""
        problems.append(_NO_IDENTITY)
    if m.customer_id.startswith(RESERVED_START):
        problems.append(Rejection("customer_id", RESERVED_PROBLEM))
    if m.currency is not None and m.currency.upper() not in ISO_4217:
        problems.append(_currency_problem(m.currency))
    if m.attributes is not None:
        size_problem = _attributes_problem(m.attributes)
        if size_problem is not None:
            problems.append(size_problem)
    if problems:
        raise Rejected(_combined(problems))

    out: Moment = {
        "moment_id": moment_id,
        "tenant": tenant,
        "customer_id": m.customer_id,
        "occurred_at": format_utc(m.occurred_at),
        "channel": m.channel,
        "direction": m.direction,
        "kind": m.kind,
        "function": m.function,
    }
    if m.actor is not None:
        out["actor"] = m.actor
    if m.kind == "ask":
        out["ask_type"] = m.ask_type or "other"
    # `+ 0.0` makes -0.0 0.0: one number, one form, so that every store and every reading
    # of the ledger (PostgreSQL's jsonb drops the sign) shows the same value.
    if m.sentiment is not None:
        out["sentiment"] = float(m.sentiment) + 0.0
    out["reach"] = m.reach
    if m.value is not None:
        out["value"] = float(m.value) + 0.0
    if m.currency is not None:
        out["currency"] = m.currency.upper()
    if m.in_reply_to is not None:
        out["in_reply_to"] = resolve_reference(tenant, m.in_reply_to)
    if m.shares is not None:
        out["shares"] = resolve_reference(tenant, m.shares)
    if m.url is not None:
        out["url"] = m.url
    if m.source is not None:
        out["source"] = {"system": m.source.system, "id": m.source.id}
    if m.attributes is not None:
        out["attributes"] = m.attributes
    return out


def _attributes_problem(attributes: dict[str, Any]) -> Rejection | None:
    try:
        size = len(orjson.dumps(attributes))
    except orjson.JSONEncodeError as error:
        if "Recursion" not in str(error):  # only from Python callers: JSON input encodes
            return Rejection("attributes", f"cannot be encoded as JSON ({error})")
        return Rejection("attributes", (
            f"nested deeper than {MAX_ATTRIBUTES_NESTING} arrays and objects (the attributes "
            f"object included); expected at most {MAX_ATTRIBUTES_NESTING}, the most the ledger "
            "stores"))
    if size > MAX_ATTRIBUTES_BYTES:
        return Rejection(
            "attributes", f"encodes to {size} bytes; expected at most {MAX_ATTRIBUTES_BYTES}")
    return None


# The deepest attributes orjson writes (tests/test_wire_format.py holds it): the ledger stores
# them as orjson writes them.
MAX_ATTRIBUTES_NESTING: Final = 254

_NO_IDENTITY: Final = Rejection(
    "moment_id", "required when there is no source (give moment_id, or source to derive it)")


def _currency_problem(currency: str) -> Rejection:
    return Rejection(
        "currency", f"expected an ISO 4217 currency code such as 'EUR', got {_short(currency)}")


def _rules(kind: str | None, direction: str | None, ask_type: str | None, has_shares: bool | None,
           occurred_at: datetime | None, now: datetime) -> list[Rejection]:
    """The rules across fields (SPEC §2) that these values break. None: the value is not
    known to be valid (it has an error of its own), so no rule is judged on it."""
    problems: list[Rejection] = []
    if kind is not None and direction is not None and kind not in KINDS_BY_DIRECTION[direction]:
        allowed = KINDS_BY_DIRECTION[direction]
        problems.append(Rejection(
            "kind",
            f"{kind!r} is not a kind of direction {direction!r} (expected one of "
            f"{', '.join(allowed)}){_did_you_mean(kind, allowed)}",
        ))
    if kind is not None:
        if ask_type is not None and kind != "ask":
            problems.append(Rejection("ask_type", f"only allowed with kind 'ask', not {kind!r}"))
        if kind == "share" and has_shares is False:
            problems.append(Rejection(
                "shares", "required with kind 'share' (the public moment re-shared)"))
        if has_shares and kind != "share":
            problems.append(Rejection("shares", f"only allowed with kind 'share', not {kind!r}"))
    if occurred_at is not None and occurred_at - now > MAX_FUTURE:
        problems.append(Rejection(
            "occurred_at",
            f"{format_utc(occurred_at)} is more than 24 h after the time of recording "
            f"({format_utc(now)})",
        ))
    return problems


def _raw_rules(data: dict[str, Any], failed: set[str], now: datetime) -> list[Rejection]:
    """The cross-field rules, judged on a message whose other fields have errors: only on
    the values that passed their own checks (those not in `failed`)."""

    def valid(name: str) -> Any:
        value = data.get(name)
        return None if name in failed or not isinstance(value, str) else value

    occurred_at = valid("occurred_at")
    problems = _rules(
        valid("kind"), valid("direction"), valid("ask_type"),
        None if "shares" in failed else data.get("shares") is not None,
        None if occurred_at is None else datetime.fromisoformat(occurred_at.upper()), now,
    )
    if data.get("moment_id") is None and data.get("source") is None:
        problems.append(_NO_IDENTITY)
    currency = valid("currency")
    if currency is not None and currency.upper() not in ISO_4217:
        problems.append(_currency_problem(currency))
    return problems


def resolve_reference(tenant: str, reference: Any) -> str:
    """A moment reference (UUID or source object) as the id it names in `tenant`."""
    if isinstance(reference, SourceRef):
        return derived_moment_id(tenant, reference.system, reference.id)
    return str(reference)


def amended(current: Mapping[str, Any], changes: dict[str, Any], now: datetime) -> Moment:
    """The moment after an amendment: `changes` set fields, a null removes one.

    The result is validated as a whole moment, so an amendment cannot leave an
    invalid moment behind; errors on a field the amendment set are named `set.FIELD`.
    """
    merged = {**current, **changes}
    if "kind" in changes and changes["kind"] != "ask" and "ask_type" not in changes:
        # ask_type belongs to an ask (stored ones carry the default "other"): a kind
        # changed away from ask drops it rather than leave an invalid moment.
        merged.pop("ask_type", None)
    wire = {name: value for name, value in merged.items() if value is not None}
    try:
        return normalise(MomentIn.model_validate(wire), now)
    except ValidationError as error:
        rejection = _rejection_from(error, wire, now)
    except Rejected as error:
        rejection = error.rejection
    raise Rejected(_combined([
        Rejection(f"set.{p.field}", p.problem) if p.field.split(".", 1)[0] in changes else p
        for p in rejection.problems
    ]))


def _rejection_from(error: ValidationError, data: Any = None,
                    now: datetime | None = None) -> Rejection:
    """Every problem pydantic found, phrased for a person: field path, expectation, input;
    with the rules across fields judged on the values that passed (when `data` is a
    moment's)."""
    errors = error.errors(include_url=False)
    # Unknown fields first: a typo (custmer_id) is the cause of its field's "missing",
    # which is left out when the typo's suggestion names it.
    unknown = [e for e in errors if e["type"] == "extra_forbidden"
               and str(e["loc"][0]) not in REFERENCE_FIELDS]
    problems = [Rejection(".".join(map(str, e["loc"])), _phrase(e)) for e in unknown]
    suggested = {_suggestion(e) for e in unknown}
    references_done: set[str] = set()
    failed: set[str] = set()
    for e in errors:
        loc = [str(part) for part in e["loc"]]
        if loc:
            failed.add(loc[0])
        if loc and loc[0] in REFERENCE_FIELDS:
            if loc[0] not in references_done:
                references_done.add(loc[0])
                problems.append(_reference_rejection(loc[0], errors))
            continue
        if e["type"] == "extra_forbidden":
            continue
        if e["type"] == "missing" and ".".join(loc) in suggested:
            continue
        problems.append(Rejection(".".join(loc), _phrase(e, data)))
    if now is not None and isinstance(data, dict) and data.get("type") in (None, "moment"):
        problems += _raw_rules(data, failed, now)
    return _combined(problems)


def _suggestion(error: Any) -> str | None:
    """The field an unknown field's name is close to, as a dotted path."""
    loc = [str(part) for part in error["loc"]]
    known = SOURCE_FIELDS if len(loc) > 1 else TOP_FIELDS
    close = get_close_matches(loc[-1], sorted(known - {loc[-1]}), n=1)
    return ".".join([*loc[:-1], close[0]]) if close else None


def _reference_rejection(field: str, errors: list[Any]) -> Rejection:
    # A reference is a union (UUID | source object): report the branch the input was meant for.
    mine = [e for e in errors if e["loc"] and e["loc"][0] == field]
    value = mine[0].get("input")
    if isinstance(value, dict):
        for e in mine:
            if len(e["loc"]) > 2 and e["loc"][1] == "SourceRef":
                path = ".".join([field, *[str(p) for p in e["loc"][2:]]])
                return Rejection(path, _phrase(e))
    return Rejection(
        field,
        'expected a moment id (UUID string) or a source object {"system": ..., "id": ...}, '
        f"got {_short(value)}",
    )


def _phrase(error: Any, data: Any = None) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        nested = len(error["loc"]) > 1
        return _unknown_field(str(error["loc"][-1]), SOURCE_FIELDS if nested else TOP_FIELDS)
    message = str(error["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    message = in_our_words(message)
    if kind == "timezone_aware":
        message = "expected an RFC 3339 timestamp with an offset (such as Z or +02:00)"
    elif kind in ("uuid_parsing", "uuid_type"):
        message = "expected a UUID such as 123e4567-e89b-42d3-a456-426614174000"
    elif kind == "model_type":
        message = 'expected a source object {"system": ..., "id": ...}'
    elif kind == "too_short" and isinstance(error.get("input"), dict):
        message = f"expected at least {error['ctx']['min_length']} field"
    elif kind == "too_long" and isinstance(error.get("input"), dict):
        message = f"expected at most {error['ctx']['max_length']} fields"
    elif kind in ("too_short", "too_long", "list_type") and error["loc"] == ("customer_ids",):
        message = "expected a list of two customer ids"
    hint = ""
    if kind == "literal_error" and isinstance(error.get("input"), str):
        choices: Sequence[str] = re.findall(r"'([^']*)'", str(error["ctx"]["expected"]))
        direction = data.get("direction") if isinstance(data, dict) else None
        if error["loc"] == ("kind",) and isinstance(direction, str) and (
                direction in KINDS_BY_DIRECTION):
            choices = KINDS_BY_DIRECTION[direction]
        hint = _did_you_mean(error["input"], choices)
    return f"{message}, got {_short(error.get('input'))}{hint}"


def _did_you_mean(value: Any, choices: Sequence[str]) -> str:
    """" (did you mean 'email'?)" when `value` is close to one of `choices`."""
    if not isinstance(value, str):
        return ""
    close = get_close_matches(value, choices, n=1, cutoff=0.6)
    if not close:
        close = [c for c in choices if c.lower() == value.lower()]
    return f" (did you mean {close[0]!r}?)" if close else ""


# pydantic's wording, as a person who writes JSON would put it.
_REWORDING: Final = (
    ("Input should be", "expected"),
    ("Input should have", "expected"),
    ("String should have", "expected"),
    ("a valid dictionary", "a JSON object"),
    ("expected greater than", "expected a number greater than"),
    ("expected less than", "expected a number less than"),
)


def in_our_words(message: str) -> str:
    """A pydantic message as the rest of mot words it ("Input should be a valid integer" ->
    "expected a valid integer"): what the wire format and the HTTP API's 422s both say."""
    for pydantic_words, ours in _REWORDING:
        message = message.replace(pydantic_words, ours)
    return message


# The deepest arrays and objects nest in what mot reads (a file's line, an HTTP batch in
# either form, a webhook's body): orjson's own limit, which every reader here goes through.
MAX_NESTING = 1024


def too_deep(pos: int) -> str:
    """What is wrong with JSON nested past MAX_NESTING (orjson's 'depth limit exceeded')."""
    return (f"nested deeper than {MAX_NESTING:,} arrays and objects at character {pos + 1}"
            " (the most mot reads)")


def _json_problem(raw: bytes | str, error: orjson.JSONDecodeError) -> str:
    """What is wrong with text that is not JSON, in words, with where (a character count
    from 1) and what was found there; orjson's own message names its parser's states."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if isinstance(raw, bytes):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            return (f"not UTF-8 text (byte 0x{raw[bad.start]:02x} at byte {bad.start + 1}); "
                    "save the file as UTF-8")
    if not text.strip():
        return "an empty line; expected a JSON object"
    where = f"at character {error.pos + 1}"
    found = _short(text[error.pos:error.pos + 20]) if error.pos < len(text) else "the end"
    words = str(error.msg)
    if words.startswith("unexpected end of data"):
        problem = f"it ends before the JSON is complete (cut off after character {len(text)})"
    elif "expected a string key" in words:
        problem = f"expected a field name in double quotes {where}, got {found}"
    elif words.startswith(("unexpected character, expected a JSON value", "invalid literal")):
        problem = (f"expected a JSON value (an object, string, number, true, false or null) "
                   f"{where}, got {found}")
    elif words.startswith("trailing comma"):
        problem = f"a comma before the closing bracket {where} (JSON allows none there)"
    elif words.startswith("depth limit exceeded"):
        problem = too_deep(error.pos)
    elif words.startswith("unexpected content after document"):
        problem = f"more text after the JSON value {where}: {found}"
    else:
        problem = f"{words} {where}"
    hint = ""
    stripped = text.lstrip()
    if stripped[:1] not in ("{", "[", '"') and "," in stripped:
        hint = " (a CSV row? import CSV with --format csv)"
    return f"not valid JSON: {problem}{hint}"


def _unknown_field(name: str, known: frozenset[str]) -> str:
    close = get_close_matches(name, sorted(known - {name}), n=1)
    if not close:
        return UNKNOWN_FIELD
    return f"unknown field (not a field of wire format v1; did you mean {close[0]!r}?)"


def _short(value: Any) -> str:
    if isinstance(value, str):
        text = repr(value)
    else:
        try:
            text = orjson.dumps(value, default=str).decode()
        except orjson.JSONEncodeError:  # an integer beyond 64 bits, from a Python caller
            text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _json_type(value: Any) -> str:
    return {list: "an array", str: "a string", int: "a number", float: "a number",
            bool: "a boolean", type(None): "null"}.get(type(value), type(value).__name__)
