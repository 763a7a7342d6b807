"""Responses: how fast the brand answers what customers bring to it (SPEC §3.5).

Pure: one customer's (person's) current moments in, one `Response` per request
out; `response_times` sums them per tenant and function. Overdue is judged at
query time against an as-of time and a configured target, like lapsing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple

from mot.projections import schema
from mot.projections.amplification import whole_seconds
from mot.projections.model import Current
from mot.projections.relationship import in_fold_order

REQUEST_KINDS: Final = frozenset(schema.REQUEST_KINDS)
"""Inbound kinds that bring something to the brand."""
ANSWER_KINDS: Final = frozenset({"answer", "help", "apology"})
"""Outbound kinds that answer the requests before them without naming one."""


def is_request(m: Current) -> bool:
    return m.direction == "inbound" and m.kind in REQUEST_KINDS


def is_unaddressed_answer(m: Current) -> bool:
    """An answer to whatever came before it: no `in_reply_to` at all (an answer to something
    else, even to an unknown or retracted moment, answers nothing else)."""
    return m.direction == "outbound" and m.kind in ANSWER_KINDS and m.in_reply_to is None


class Response(NamedTuple):
    """One request and its first response (all `None` while it is open). A named tuple, as
    `Current` is: a rebuild makes one per request, and a frozen dataclass costs several times
    as much to make."""

    request_moment_id: str
    tenant: str
    customer_id: str  # the person
    kind: str
    channel: str
    function: str
    occurred_us: int
    response_moment_id: str | None
    response_function: str | None
    responded_us: int | None
    response_seconds: int | None

    @property
    def is_open(self) -> bool:
        return self.response_moment_id is None


def fold_responses(moments: Sequence[Current], customer_id: str, *, ordered: bool = False
                   ) -> list[Response]:
    """Every request among a person's current moments with its first response, in fold order.

    A response to request R is one of the person's outbound moments that names R in
    `in_reply_to` (any kind, any time), or an unaddressed answer after R in fold order;
    R's response is the first of them in fold order. `ordered`: the caller has the
    moments in fold order already.
    """
    # The rules of `is_request` and `is_unaddressed_answer`, written out: this runs for
    # every customer of a rebuild, and most have no request (no sort, no list for them);
    # those with requests are read once, in fold order.
    for m in moments:
        if m.kind in REQUEST_KINDS and m.direction == "inbound":
            break
    else:
        return []
    requests: list[Current] = []
    first: dict[str, Current] = {}  # request id -> its first response
    waiting: list[Current] = []  # requests before the current position with no answer yet
    replies: list[Current] = []  # outbound moments naming a moment (maybe a later request)
    for m in moments if ordered else in_fold_order(moments):
        direction = m.direction
        if direction == "outbound":
            if m.in_reply_to is not None:
                replies.append(m)
            elif waiting and m.kind in ANSWER_KINDS:
                for r in waiting:
                    first[r.moment_id] = m
                waiting.clear()
        elif direction == "inbound" and m.kind in REQUEST_KINDS:
            requests.append(m)
            waiting.append(m)
    if replies:
        request_ids = {r.moment_id for r in requests}
        for m in replies:  # in fold order; the earlier of it and the answer found above
            named = m.in_reply_to
            if named in request_ids:
                assert named is not None
                found = first.get(named)
                if found is None or m.fold_key < found.fold_key:
                    first[named] = m
    return [_response(r, first.get(r.moment_id), customer_id) for r in requests]


def _response(r: Current, answer: Current | None, customer_id: str) -> Response:
    # `_make` of a tuple: the named tuple's own __new__ is one Python call more per request.
    if answer is None:
        return _make((r.moment_id, r.tenant, customer_id, r.kind, r.channel, r.function,
                      r.occurred_us, None, None, None, None))
    return _make((r.moment_id, r.tenant, customer_id, r.kind, r.channel, r.function,
                  r.occurred_us, answer.moment_id, answer.function, answer.occurred_us,
                  whole_seconds(answer.occurred_us - r.occurred_us)))


_make = Response._make


def nearest_rank(ascending: Sequence[int], percent: int) -> int | None:
    """The value at rank ⌈p/100 · n⌉ of n values in ascending order; None when n = 0."""
    n = len(ascending)
    if n == 0:
        return None
    rank = max(1, -(-percent * n // 100))
    return ascending[rank - 1]


@dataclass(frozen=True, slots=True)
class ResponseTimes:
    """Per tenant and request function: how many requests, how many answered, how fast."""

    tenant: str
    function: str
    requests: int
    answered: int
    open: int
    response_p50_seconds: int | None
    response_p90_seconds: int | None


def response_times(responses: Iterable[Response]) -> list[ResponseTimes]:
    """The per-tenant, per-function sums of §3.5, ordered by tenant and function."""
    return sum_response_times((r.tenant, r.function, r.response_seconds) for r in responses)


def sum_response_times(requests: Iterable[tuple[str, str, int | None]]) -> list[ResponseTimes]:
    """`response_times` of (tenant, function, response_seconds or None while open) triples:
    what a query reads of the responses table."""
    groups: dict[tuple[str, str], list[int | None]] = {}
    for tenant, function, seconds in requests:
        groups.setdefault((tenant, function), []).append(seconds)
    rows = []
    for (tenant, function), all_seconds in sorted(groups.items()):
        times = sorted(s for s in all_seconds if s is not None)
        n = len(all_seconds)
        rows.append(ResponseTimes(tenant, function, n, len(times), n - len(times),
                                  nearest_rank(times, 50), nearest_rank(times, 90)))
    return rows


def is_overdue(r: Response, as_of_us: int, targets: Mapping[str, int]) -> bool:
    """An open request older than its function's first-response target (seconds), if any."""
    return r.is_open and waited_past_target(r.function, r.occurred_us, as_of_us, targets)


def waited_past_target(function: str, occurred_us: int, as_of_us: int,
                       targets: Mapping[str, int]) -> bool:
    """Whether a request of `function` made at `occurred_us` has waited longer than the
    function's target (seconds) by `as_of_us`; never without a target."""
    target = targets.get(function)
    return target is not None and as_of_us - occurred_us > target * 1_000_000
