"""Shapes of the API's answers, for the OpenAPI schema at /docs (and the schemathesis tests).

The endpoints build their JSON with orjson; these models document it. Query
records are exactly those of `mot query NAME --format json`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Stage = Literal["stranger", "acquainted", "engaged", "loyal", "advocate", "detractor"]
Status = Literal["ok_to_ask", "give_first", "stop_asking"]
Polarity = Literal["positive", "neutral", "negative"]
ItemOutcome = Literal["recorded", "amended", "retracted", "duplicate", "quarantined", "rejected"]


class ItemAnswer(BaseModel):
    """What happened to one message of the batch."""

    index: int = Field(description="Position of the message in the batch, from 0")
    outcome: ItemOutcome = Field(description=(
        "recorded/amended/retracted: in the ledger; duplicate: already there, nothing appended; "
        "quarantined: rejected and kept in the quarantine with the reason; rejected: refused by "
        "the token's tenant rules, not stored"))
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


class Problem(BaseModel):
    """An error: `detail` says what went wrong and what to do."""

    detail: str


class Health(BaseModel):
    status: Literal["ok"]


class Relationship(BaseModel):
    tenant: str
    customer_id: str
    stage: Stage
    exchanges: int
    wants: int
    likes: int
    customer_moments: int
    brand_moments: int
    first_moment_at: str | None
    last_moment_at: str | None
    last_customer_moment_at: str | None
    version: int | None
    lapsed: bool


class Reciprocity(BaseModel):
    tenant: str
    customer_id: str
    given: int
    asked: int
    received: int
    balance: int
    unanswered_asks: int
    status: Status
    version: int | None


class Transition(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    tenant: str
    customer_id: str
    occurred_at: str
    moment_id: str
    version: int | None
    from_: Stage = Field(alias="from")
    to: Stage


class Amplification(BaseModel):
    amplification_id: str
    tenant: str
    customer_id: str
    occurred_at: str
    channel: str
    sentiment: float | None
    trigger_moment_id: str | None
    trigger_function: str | None
    trigger_channel: str | None
    trigger_actor: str | None
    delay_seconds: float | None
    polarity: Polarity
    reach: int
    cascade_size: int
    cascade_reach: int
    version: int | None


class Team(BaseModel):
    tenant: str
    function: str
    moments: int
    given: int
    asked: int
    amplifications: int
    positive: int
    negative: int
    cascade_reach: int
    version: int | None


class Listening(BaseModel):
    tenant: str
    listening_share: float | None
    moments: int | None = Field(None, description="Absent with as_of")
    listening: int | None = Field(None, description="Absent with as_of")
    other: int | None = Field(None, description="Absent with as_of")
    version: int | None


class HistoryRecord(BaseModel):
    """One event of a moment's history, as `mot show --format json` prints it."""

    version: int
    recorded_at: str
    origin: str
    event: Literal["recorded", "amended", "retracted"]
    moment: dict[str, object] | None = None
    set: dict[str, object] | None = None
    reason: str | None = None
