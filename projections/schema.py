"""Each projection's record declared once (SPEC §3): fields, types, key, indexes, output order.

Everything else derives from these declarations: the stores' tables, indexes
and the rows they write (adapters/stores), the query views and their column
order (`mot query` in every format, the HTTP API), the HTTP response models,
the changelog's Kafka payload, and each value's `as_record`. Adding a field to
a projection is one edit here plus its rule.

Pure and light: `mot query` loads it, so it imports none of the folds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from types import MappingProxyType
from typing import Any, Final, Literal

import orjson

from mot.domain.timefmt import micros_to_text
from mot.domain.vocabulary import AMPLIFYING_KINDS

FieldType = Literal["text", "int", "bigint", "real", "bool", "json", "list"]
"""`list`: a list of text (`customer_ids`), stored as its JSON text in both databases, so a
row read back compares equal to the row written."""

Shown = Literal["record", "detail", "stored"]
"""Where a field appears: "record" in the SPEC record (`as_record`, the golden fixture) and
every output; "detail" in the query output, the HTTP API and the changelog only; "stored"
only in the table (what folds and filters read)."""

STAGES: Final = ("stranger", "acquainted", "engaged", "loyal", "advocate", "detractor")
STATUSES: Final = ("ok_to_ask", "give_first", "stop_asking")
POLARITIES: Final = ("positive", "neutral", "negative")
REQUEST_KINDS: Final = ("question", "complaint", "feedback")


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a projection's record."""

    name: str  # in records, query output, the HTTP API and the changelog
    type: FieldType
    null: bool = False
    shown: Shown = "record"
    column: str = ""  # the stored column, where the record's name is a SQL word (from, to)
    attr: str = ""  # the domain value's attribute, where it is not the column's name
    micros_text: bool = False  # the attribute is microseconds; the field is their RFC 3339 text
    choices: tuple[str, ...] = ()  # the values of an enumerated field
    sortable: bool = True  # `--sort` may name it
    computed: bool = False  # not stored: worked out when queried (`lapsed`)
    needs: tuple[str, ...] = ()  # the stored columns a computed field is worked out from
    position: bool = False  # stored: the row's place in its customer's list (`seq`)
    as_of_null: bool = False  # None in an `--as-of` answer, which folds rows on demand

    @property
    def col(self) -> str:
        """The stored column."""
        return self.column or self.name

    @property
    def source(self) -> str:
        """The attribute of the domain value the field comes from."""
        return self.attr or self.col


@dataclass(frozen=True, slots=True)
class Index:
    """A secondary index: `role` names it (`{table}_{role}`)."""

    role: str
    columns: tuple[str, ...]
    unique: bool = False
    partial: bool = False  # only rows whose first column is not NULL
    where: str = ""  # and, when given, only the rows this SQL condition holds for
    # Left with room in each leaf when a rebuild builds it, where CREATE INDEX packs leaves
    # full (SQLite): for keys that go in in no order, as hashed ids do.
    room: bool = False


VERSION: Final = Field("version", "bigint", shown="detail", as_of_null=True)
"""The ledger position of the page at which a row last changed (SPEC §3.3, downstream)."""

CUSTOMER_IDS: Final = Field("customer_ids", "list", sortable=False)
"""All the person's customer ids in code-point order (SPEC §3: one id when it has no links)."""


@dataclass(frozen=True, slots=True)
class Projection:
    """A projection's record: its table, the API's model, and every output's columns."""

    name: str  # its table and its `mot query` name
    model: str  # its HTTP response model
    fields: tuple[Field, ...]  # in output order (and the table's column order)
    key: tuple[str, ...]  # stored columns
    indexes: tuple[Index, ...] = ()
    order: tuple[str, ...] = ()  # the default output order (stored columns); default: the key
    time: str | None = None  # the stored column `--since`/`--until` compare
    filters: Mapping[str, str] = field(default_factory=dict)  # query filter -> stored column
    message_key: tuple[str, ...] = ()  # what keys its changelog's messages; default: the key

    @property
    def per_customer(self) -> bool:
        """Whether its rows belong to a customer (it has a `customer_id`): an erasure takes a
        person's rows out of it (SPEC §6)."""
        return any(f.col == "customer_id" for f in self.fields)

    @property
    def stored(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if not f.computed)

    @property
    def columns(self) -> tuple[str, ...]:
        """The table's columns, in order."""
        return tuple(f.col for f in self.stored)

    @property
    def output(self) -> tuple[Field, ...]:
        """What a query prints, in order."""
        return tuple(f for f in self.fields if f.shown != "stored")

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.output)

    @property
    def read_fields(self) -> tuple[Field, ...]:
        """What a read of the table takes: the stored fields the output shows, and those a
        computed one needs."""
        needs = {column for f in self.fields for column in f.needs}
        return tuple(f for f in self.stored if f.shown != "stored" or f.col in needs)

    @property
    def default_order(self) -> tuple[str, ...]:
        return self.order or self.message_key or self.key

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name or f.col == name:
                return f
        raise KeyError(f"{self.name} has no field {name!r}")


def _text(name: str, **kw: Any) -> Field:
    return Field(name, "text", **kw)


def _int(name: str, **kw: Any) -> Field:
    return Field(name, "int", **kw)


def _us(name: str, **kw: Any) -> Field:
    return Field(name, "bigint", shown="stored", sortable=False, **kw)


def _at(name: str, micros: str, **kw: Any) -> Field:
    return Field(name, "text", attr=micros, micros_text=True, **kw)


RELATIONSHIPS: Final = Projection(
    "relationships", "Relationship",
    (
        _text("tenant"), _text("customer_id"), _text("stage", choices=STAGES),
        _int("exchanges"), _int("wants"), _int("likes"), _int("customer_moments"),
        _int("brand_moments"),
        _at("first_moment_at", "first_moment_us"), _at("last_moment_at", "last_moment_us"),
        _at("last_customer_moment_at", "last_customer_moment_us", null=True),
        _us("last_moment_us"), _us("last_customer_moment_us", null=True),
        CUSTOMER_IDS, VERSION,
        Field("lapsed", "bool", shown="detail", computed=True, sortable=False,
              needs=("last_customer_moment_us",)),
    ),
    key=("tenant", "customer_id"),
    indexes=(Index("stage", ("tenant", "stage")), Index("customer", ("customer_id",)),
             Index("version", ("version",))),
    time="last_moment_us",
    filters={"tenant": "tenant", "customer": "customer_id", "stage": "stage"},
)

RECIPROCITY: Final = Projection(
    "reciprocity", "Reciprocity",
    (
        _text("tenant"), _text("customer_id"), _int("given"), _int("asked"), _int("received"),
        _int("balance"), _int("unanswered_asks"), _text("status", choices=STATUSES),
        CUSTOMER_IDS, VERSION,
    ),
    key=("tenant", "customer_id"),
    indexes=(Index("status", ("tenant", "status")), Index("customer", ("customer_id",)),
             Index("version", ("version",))),
    filters={"tenant": "tenant", "customer": "customer_id", "status": "status"},
)

TRANSITIONS: Final = Projection(
    "transitions", "Transition",
    (
        _text("tenant"), _text("customer_id"), _int("seq", shown="stored", position=True),
        _text("from", column="from_stage", choices=STAGES, sortable=False),
        _text("to", column="to_stage", choices=STAGES, sortable=False),
        _at("occurred_at", "occurred_us"), _us("occurred_us"), _text("moment_id"), VERSION,
    ),
    key=("tenant", "customer_id", "seq"),
    indexes=(Index("when", ("tenant", "occurred_us")),),
    order=("tenant", "customer_id", "occurred_us", "seq"),
    time="occurred_us",
    filters={"tenant": "tenant", "customer": "customer_id", "stage": "to_stage"},
)

AMPLIFICATIONS: Final = Projection(
    "amplifications", "Amplification",
    (
        _text("amplification_id"), _text("tenant"), _text("customer_id"),
        _at("occurred_at", "occurred_us", shown="detail"), _us("occurred_us"),
        _text("channel", shown="detail"), Field("sentiment", "real", null=True, shown="detail"),
        _text("trigger_moment_id", null=True), _text("trigger_function", null=True),
        _text("trigger_channel", null=True), _text("trigger_actor", null=True, shown="detail"),
        Field("delay_seconds", "bigint", null=True),
        _text("polarity", choices=POLARITIES), Field("reach", "bigint"), _int("cascade_size"),
        Field("cascade_reach", "bigint"), VERSION,
    ),
    key=("tenant", "amplification_id"),  # moment ids are scoped by tenant (SPEC §2)
    # A changelog message is keyed by tenant and id: the same moment id in two tenants names
    # two moments, which a compacted topic must keep apart.
    message_key=("tenant", "amplification_id"),
    order=("amplification_id",),
    indexes=(Index("customer", ("tenant", "customer_id")),
             Index("polarity", ("tenant", "polarity", "cascade_reach")),
             Index("version", ("version",))),
    time="occurred_us",
    filters={"tenant": "tenant", "customer": "customer_id", "polarity": "polarity",
             "function": "trigger_function"},
)

TEAMS: Final = Projection(
    "teams", "Team",
    (
        _text("tenant"), _text("function"), _int("moments"), _int("given"), _int("asked"),
        _int("amplifications"), _int("positive"), _int("negative"),
        Field("cascade_reach", "bigint"), VERSION,
    ),
    key=("tenant", "function"),
    filters={"tenant": "tenant", "function": "function"},
)

LISTENING: Final = Projection(
    "listening", "Listening",
    (
        _text("tenant"), Field("listening_share", "real", null=True),
        _int("moments", shown="detail", sortable=False),
        _int("listening", shown="detail", sortable=False),
        _int("other", shown="detail", sortable=False), VERSION,
    ),
    key=("tenant",),
    filters={"tenant": "tenant"},
)

RESPONSES: Final = Projection(
    "responses", "Response",
    (
        _text("request_moment_id"), _text("tenant"), _text("customer_id"),
        _text("kind", choices=REQUEST_KINDS), _text("channel"), _text("function"),
        _at("occurred_at", "occurred_us"), _us("occurred_us"),
        _text("response_moment_id", null=True), _text("response_function", null=True),
        _at("responded_at", "responded_us", null=True), _us("responded_us", null=True),
        Field("response_seconds", "bigint", null=True), VERSION,
    ),
    key=("tenant", "request_moment_id"),  # moment ids are scoped by tenant (SPEC §2)
    message_key=("tenant", "request_moment_id"),
    order=("request_moment_id", "tenant"),
    # Published to Kafka (mot.responses): the changelog makes its (version, key) index when it
    # first publishes (adapters/stores/changelog.py). The overdue check reads the open
    # requests of its window by `occurred_us`, as --since does.
    indexes=(Index("customer", ("tenant", "customer_id")), Index("when", ("occurred_us",))),
    time="occurred_us",
    filters={"tenant": "tenant", "customer": "customer_id", "function": "function",
             "kind": "kind"},
)
"""One row per request (SPEC §3.5): what a customer brought to the brand, and its first
response (null while open). `--open` and `--overdue` are worked out when queried."""

RESPONSE_TIMES: Final = Projection(
    "response-times", "ResponseTimes",
    (
        _text("tenant"), _text("function"), _int("requests"), _int("answered"), _int("open"),
        Field("response_p50_seconds", "bigint", null=True),
        Field("response_p90_seconds", "bigint", null=True),
    ),
    key=("tenant", "function"),
    filters={"tenant": "tenant", "function": "function"},
)
"""Per tenant and request function (SPEC §3.5): summed from `responses` when queried, so it
has no table; declared for its output's columns, the HTTP model and CSV order."""

SUMMARIES: Final[Mapping[str, tuple[Projection, str]]] = MappingProxyType({
    RESPONSE_TIMES.name: (RESPONSE_TIMES, "responses"),
})
"""Queries summed from a projection's records when asked: name -> (record, from which)."""

SUMMED_FROM: Final = frozenset(source for _, source in SUMMARIES.values())
"""The projections a query is summed from: an erasure keeps a person's rows there under its
pseudo id, so that the per-tenant sums stay (SPEC §6)."""

PERSONS: Final = Projection(
    "persons", "Person",
    (
        _text("tenant"), _text("customer_id"), CUSTOMER_IDS,
        _int("ids", shown="detail"),
        # The most ids one `email:` id of the person is linked to (0: none), and whether the
        # person looks like a merge of strangers (mot.projections.persons.is_suspect).
        _int("email_links", shown="detail"), Field("suspect", "bool", shown="detail"),
        # The person's group: its smallest id, with or without moments (how an id finds it).
        _text("group_id", shown="stored"),
        VERSION,
    ),
    key=("tenant", "customer_id"),
    indexes=(Index("group", ("group_id", "tenant")), Index("ids", ("tenant", "ids")),
             Index("version", ("version",))),
    filters={"tenant": "tenant", "customer": "customer_id", "suspect": "suspect"},
)
"""One row per person with a current moment (SPEC §2, "Links"; §3: `customer_ids`)."""

PROJECTIONS: Final[Mapping[str, Projection]] = MappingProxyType({
    p.name: p for p in (RELATIONSHIPS, RECIPROCITY, TRANSITIONS, AMPLIFICATIONS, TEAMS, LISTENING,
                        RESPONSES, PERSONS)
})
"""Every projection `mot query` answers, by name, in the order the help lists them."""

NUMERIC_TYPES: Final = frozenset({"int", "bigint", "real"})


# -- the current moments the folds read ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class MomentField:
    """A column of the current-moments table and where it comes from in a normalised moment."""

    name: str
    type: FieldType
    null: bool = False
    micros_of: str = ""  # microseconds since the epoch of this RFC 3339 field of the moment
    folded: bool = True  # a field of `Current`, which the folds read
    path: tuple[str, ...] = ()  # where it is in the moment, when not at its own name

    @property
    def at(self) -> tuple[str, ...]:
        """The keys leading to the field's value in a normalised moment."""
        return self.path or (self.name,)


MOMENT_FIELDS: Final = (
    MomentField("moment_id", "text"), MomentField("tenant", "text"),
    MomentField("customer_id", "text"), MomentField("occurred_us", "bigint", micros_of="occurred_at"),
    MomentField("direction", "text"), MomentField("kind", "text"), MomentField("function", "text"),
    MomentField("channel", "text"), MomentField("actor", "text", null=True),
    MomentField("ask_type", "text", null=True), MomentField("sentiment", "real", null=True),
    MomentField("reach", "bigint"), MomentField("in_reply_to", "text", null=True),
    MomentField("shares", "text", null=True), MomentField("occurred_at", "text", folded=False),
    # The rest of the moment, for analysts (the folds read none of it).
    MomentField("value", "real", null=True, folded=False),
    MomentField("currency", "text", null=True, folded=False),
    MomentField("url", "text", null=True, folded=False),
    MomentField("source_system", "text", null=True, folded=False, path=("source", "system")),
    MomentField("source_id", "text", null=True, folded=False, path=("source", "id")),
    MomentField("attributes", "json", null=True, folded=False),
)
"""The current-moments table, in column order (then `version`): what `current_of` makes of a
moment (the incremental path) and what a rebuild's in-database load selects, from one table.
The folded fields are `Current`'s, in its order; the others carry every other field of the
moment, so the table answers analysts' questions (revenue per stage) with no JSON digging."""

AMPLIFYING_REPLY: Final = ("direction = 'public' AND kind IN ("
                           + ", ".join(f"'{k}'" for k in sorted(AMPLIFYING_KINDS)) + ")")
"""The current moments that are amplification moments (SPEC §3.3: a public post, review or
mention), as SQL: a query that names it, word for word, may read the index it limits."""

MOMENT_INDEXES: Final = (
    # Unique, but not the primary key: a rebuild loads the table first and indexes it after.
    # Moment ids are scoped by tenant (SPEC §2); the id first, as lookups name it. A moment
    # id is a hash, so each new moment of a catch-up goes into a leaf of its own: built
    # packed full (SQLite), each one split its leaf (bench/scaling_notes.toml, catch-up).
    Index("key", ("moment_id", "tenant"), unique=True, room=True),
    # A person's fold is one range read of this index alone: it holds every column the
    # fold reads (a rebuild's fold reads a million rows without visiting the table). Moments
    # are kept by `person`, the group of their customer id (SPEC §2, links: the smallest id
    # of its person; its own when it has no links), so a person's ids read as one range.
    Index("fold", ("tenant", "person", "occurred_us", "moment_id", "customer_id", "direction",
                   "kind", "function", "channel", "actor", "ask_type", "sentiment", "reach",
                   "in_reply_to", "shares")),
    Index("shares", ("shares",), partial=True),
    # The amplification moments that reply to a moment (`replying_to`), not every reply:
    # a third of the moments reply to one, and each new reply wrote a leaf of its own in an
    # index keyed by a hashed id (a catch-up's pages written, bench/scaling_notes.toml);
    # one in sixteen of them is a public post, review or mention.
    Index("amplifying", ("in_reply_to",), partial=True, where=AMPLIFYING_REPLY),
)


# -- records of domain values ---------------------------------------------------------------


def record_maker(projection: Projection, shown: tuple[Shown, ...] = ("record",)
                 ) -> Callable[[Any], dict[str, Any]]:
    """A function from a domain value (Relationship, Transition...) to its record: the fields
    shown as `shown`, in output order, named as SPEC names them."""
    fields = [f for f in projection.fields
              if f.shown in shown and not f.computed and not f.position and f.name != "version"]
    names = [f.name for f in fields]
    get = attrgetter(*[f.source for f in fields])
    texts = [i for i, f in enumerate(fields) if f.micros_text]
    lists = [i for i, f in enumerate(fields) if f.type == "list"]

    def record(value: Any) -> dict[str, Any]:
        values = list(get(value))
        for i in texts:
            if values[i] is not None:
                values[i] = micros_to_text(values[i])
        for i in lists:
            values[i] = list(values[i])
        return dict(zip(names, values, strict=True))

    return record


def row_maker(projection: Projection) -> Callable[..., tuple[Any, ...]]:
    """A function from a domain value to its stored row without `version`: `row(value)`, or
    `row(value, position)` for a projection kept as a list per customer (transitions)."""
    fields = [f for f in projection.stored if f.name != "version"]
    from_value = [f for f in fields if not f.position]
    get = attrgetter(*[f.source for f in from_value])
    texts = [i for i, f in enumerate(from_value) if f.micros_text]
    lists = [i for i, f in enumerate(from_value) if f.type == "list"]
    bools = [i for i, f in enumerate(from_value) if f.type == "bool"]
    at = next((i for i, f in enumerate(fields) if f.position), None)

    def row(value: Any, position: int = 0) -> tuple[Any, ...]:
        values = list(get(value))
        for i in texts:
            if values[i] is not None:
                values[i] = micros_to_text(values[i])
        for i in lists:
            values[i] = list_text(values[i])
        for i in bools:  # stored as an integer in both databases
            values[i] = int(values[i])
        if at is not None:
            values.insert(at, position)
        return tuple(values)

    return row


def list_text(values: Any) -> str:
    """A `list` field as it is stored: its JSON text."""
    return orjson.dumps(list(values)).decode()


def stored_decoder(fields: Sequence[Field]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Turns a record read from a table (named as `fields` name them) into its output values:
    a `list` field's JSON text back into a list, a stored bool's 0 or 1 into a bool."""
    lists = [f.name for f in fields if f.type == "list"]
    bools = [f.name for f in fields if f.type == "bool" and not f.computed]

    def decode(record: dict[str, Any]) -> dict[str, Any]:
        for name in lists:
            if isinstance(record.get(name), str):
                record[name] = orjson.loads(record[name])
        for name in bools:  # stored as 0 or 1
            if record.get(name) is not None:
                record[name] = bool(record[name])
        return record

    return decode


def value_maker(projection: Projection, make: Callable[..., Any]) -> Callable[[Any], Any]:
    """The inverse of `row_maker`: a stored row (without `version`) back to its domain value,
    `make(**attributes)`."""
    fields = [f for f in projection.stored if f.name != "version"]
    taken = [(i, f.source, f.type in ("int", "bigint")) for i, f in enumerate(fields)
             if not f.position and not f.micros_text]

    def value(row: Any) -> Any:
        return make(**{name: (None if row[i] is None else int(row[i])) if whole else row[i]
                       for i, name, whole in taken})

    return value
