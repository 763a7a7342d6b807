"""Shapes of the API's answers, for the OpenAPI schema at /docs (and the schemathesis tests).

The endpoints build their JSON with orjson; these models document it. Query
records are exactly those of `mot query NAME --format json`.
"""

from __future__ import annotations

import keyword
from types import GenericAlias
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from mot.projections.schema import (
    AMPLIFICATIONS,
    LISTENING,
    PERSONS,
    RECIPROCITY,
    RELATIONSHIPS,
    RESPONSE_TIMES,
    RESPONSES,
    TEAMS,
    TRANSITIONS,
    Projection,
)

Stage = Literal["stranger", "acquainted", "engaged", "loyal", "advocate", "detractor"]
Status = Literal["ok_to_ask", "give_first", "stop_asking"]
Polarity = Literal["positive", "neutral", "negative"]
RequestKind = Literal["question", "complaint", "feedback"]
ItemOutcome = Literal["recorded", "amended", "retracted", "linked", "unlinked", "duplicate",
                      "quarantined", "rejected", "suppressed"]


class ItemAnswer(BaseModel):
    """What happened to one message of the batch."""

    index: int = Field(description="Position of the message in the batch, from 0")
    outcome: ItemOutcome = Field(description=(
        "recorded/amended/retracted/linked/unlinked: in the ledger; duplicate: already there, "
        "nothing appended; "
        "quarantined: rejected and kept in the quarantine with the reason; rejected: refused by "
        "the token's tenant rules, not stored; suppressed: names an erased person or moment, "
        "counted and dropped"))
    moment_id: str | None
    field: str | None = Field(description="The field at fault (dotted path), for quarantined "
                              "and rejected messages; empty for the whole message")
    reason: str | None


class BatchAnswer(BaseModel):
    """The answer to a batch: sent only after the recorded messages were committed."""

    request_id: str
    tenant: str
    counts: dict[str, int] = Field(description="How many messages had each outcome")
    items: list[ItemAnswer]


class FieldError(BaseModel):
    """One problem of a request: where, and what was expected."""

    field: str = Field(description="The parameter or field (dotted path)")
    message: str


class Problem(BaseModel):
    """An error, as RFC 9457 problem details (`application/problem+json`)."""

    type: str = Field(description="Always about:blank: `status` and `code` say what it is")
    title: str = Field(description="The HTTP status' phrase")
    status: int
    detail: str = Field(description="What went wrong and what to do")
    code: str = Field(description="A stable word for programs, such as too_many_items, "
                      "invalid_parameter, unauthorized, store_unavailable")
    field: str | None = Field(description="The parameter or field at fault, when there is one")
    errors: list[FieldError] | None = Field(
        description="Each problem, when a request has several (a 422)")


class Health(BaseModel):
    status: Literal["ok"]


_TYPES: dict[str, Any] = {"text": str, "int": int, "bigint": int, "real": float, "bool": bool,
                          "list": list[str]}


def _model(projection: Projection) -> type[BaseModel]:
    """The response model of a projection's records, from its declaration."""
    fields: dict[str, Any] = {}
    for f in projection.output:
        annotation: Any = Literal[f.choices] if f.choices else _TYPES[f.type]
        if f.null or f.as_of_null:
            annotation = annotation | None
        name, alias = (f"{f.name}_", f.name) if keyword.iskeyword(f.name) else (f.name, None)
        fields[name] = (annotation, Field(alias=alias) if alias else ...)
    return create_model(projection.model, __config__=ConfigDict(populate_by_name=True),
                        **fields)


Relationship = _model(RELATIONSHIPS)
Reciprocity = _model(RECIPROCITY)
Transition = _model(TRANSITIONS)
Amplification = _model(AMPLIFICATIONS)
Team = _model(TEAMS)
Listening = _model(LISTENING)
ResponseRecord = _model(RESPONSES)
ResponseTimes = _model(RESPONSE_TIMES)
Person = _model(PERSONS)
RECORD_LISTS: dict[str, Any] = {
    p.name: GenericAlias(list, (model,))
    for p, model in ((RELATIONSHIPS, Relationship), (RECIPROCITY, Reciprocity),
                     (TRANSITIONS, Transition), (AMPLIFICATIONS, Amplification),
                     (TEAMS, Team), (LISTENING, Listening), (RESPONSES, ResponseRecord),
                     (RESPONSE_TIMES, ResponseTimes), (PERSONS, Person))
}
"""What each query endpoint answers: a list of its projection's records."""


class HistoryRecord(BaseModel):
    """One event of a moment's history, as `mot show --format json` prints it."""

    version: int
    recorded_at: str
    origin: str
    event: Literal["recorded", "amended", "retracted"]
    moment: dict[str, object] | None = None
    set: dict[str, object] | None = None
    reason: str | None = None
