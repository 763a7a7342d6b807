"""Issue 13, cases 4, 5, 10, 14 and 16: content compared and kept exactly, on both stores.

- 4: an amendment repeats only the latest one, or names itself with `amendment_id`;
- 5: "same content" compares JSON values (a boolean is not a number);
- 10: nothing is silently rounded (integers beyond 64 bits, finer than microseconds);
- 14: -0.0 has one form, so rebuild and incremental projection agree;
- 16: `mot project` counts events, not positions.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from mot.bootstrap import Services, open_store
from mot.cli.main import cli
from mot.domain.events import MomentAmended
from mot.domain.ledger import Outcome
from mot.service.ledger import Incoming

MID = "0b6b0f8e-1d2c-4e3f-9a1b-2c3d4e5f6a7b"
AID = "5a4d6c1e-8f7b-4a3c-9d2e-1f0a9b8c7d6e"


def moment(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "moment_id": MID, "tenant": "acme", "customer_id": "c1",
        "occurred_at": "2026-03-01T09:00:00Z", "channel": "twitter", "direction": "public",
        "kind": "post", "sentiment": 0.5, "reach": 10,
    }
    base.update(fields)
    return base


def amend(set_: dict[str, Any], reason: str = "re-scored", **extra: Any) -> dict[str, Any]:
    return {"type": "amend", "moment_id": MID, "set": set_, "reason": reason, **extra}


def record(services: Services, *messages: dict[str, Any] | bytes) -> list[tuple[str, str | None]]:
    items = [Incoming(m if isinstance(m, bytes) else orjson.dumps(m), "test:1") for m in messages]
    verdicts = services.ledger.record(items).verdicts
    return [(v.outcome.value, None if v.rejection is None else v.rejection.reason)
            for v in verdicts]


def outcomes(services: Services, *messages: dict[str, Any] | bytes) -> list[Outcome]:
    return [Outcome(o) for o, _ in record(services, *messages)]


def sentiments(services: Services) -> list[float]:
    return [e.moment["sentiment"] for e in services.ledger_store.stream(MID)
            if isinstance(e, MomentAmended)]


# -- case 4: A -> B -> A applies three times ---------------------------------------------


def test_an_earlier_amendment_sent_again_applies_only_the_latest_is_a_retry(
        services: Services) -> None:
    a, b = amend({"sentiment": 0.1}), amend({"sentiment": 0.2})
    assert outcomes(services, moment(), a, b, a) == [
        Outcome.RECORDED, Outcome.AMENDED, Outcome.AMENDED, Outcome.AMENDED]
    assert sentiments(services) == [0.1, 0.2, 0.1]
    # The latest again is a retry (in a later batch too, the stream read back from the store).
    assert outcomes(services, a) == [Outcome.DUPLICATE]
    assert outcomes(services, amend({"sentiment": 0.1}, "another reason")) == [Outcome.AMENDED]
    assert sentiments(services) == [0.1, 0.2, 0.1, 0.1]


def test_an_amendment_id_makes_any_repeat_a_duplicate(services: Services, store_url: str) -> None:
    first = amend({"sentiment": 0.1}, amendment_id=AID)
    assert outcomes(services, moment(), first, amend({"sentiment": 0.2})) == [
        Outcome.RECORDED, Outcome.AMENDED, Outcome.AMENDED]
    # Not the latest, but named: a duplicate, also after the store is opened again.
    services.close()
    reopened = open_store(store_url)
    try:
        assert outcomes(reopened, first) == [Outcome.DUPLICATE]
        assert sentiments(reopened) == [0.1, 0.2]
        [named, _] = [e for e in reopened.ledger_store.stream(MID) if isinstance(e, MomentAmended)]
        assert named.amendment_id == AID
        # A new id applies even when its content equals the latest amendment's.
        again = amend({"sentiment": 0.2}, amendment_id="9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b")
        assert outcomes(reopened, again, again) == [Outcome.AMENDED, Outcome.DUPLICATE]
        assert sentiments(reopened) == [0.1, 0.2, 0.2]
    finally:
        reopened.close()


# -- case 5: JSON values ------------------------------------------------------------------


def test_a_boolean_is_not_a_number_but_1_and_1_0_are_the_same(services: Services) -> None:
    assert outcomes(services, moment(attributes={"flag": True, "n": 1, "nested": [1, False]})) == [
        Outcome.RECORDED]
    same = moment(attributes={"flag": True, "n": 1.0, "nested": [1.0, False]})
    assert outcomes(services, same) == [Outcome.DUPLICATE]
    for changed in ({"flag": 1, "n": 1, "nested": [1, False]},
                    {"flag": True, "n": 1, "nested": [True, False]},
                    {"flag": True, "n": 1, "nested": [1, 0]}):
        [(outcome, reason)] = record(services, moment(attributes=changed))
        assert outcome == "quarantined"
        assert reason is not None and "differs in: attributes)" in reason
    assert len(services.ledger_store.stream(MID)) == 1


def test_an_amendment_repeated_with_a_boolean_for_a_number_is_not_a_retry(
        services: Services) -> None:
    assert outcomes(services, moment(), amend({"attributes": {"flag": 1}}),
                    amend({"attributes": {"flag": True}}), amend({"attributes": {"flag": True}}),
                    amend({"attributes": {"flag": 1.0}})) == [
        Outcome.RECORDED, Outcome.AMENDED, Outcome.AMENDED, Outcome.DUPLICATE, Outcome.AMENDED]


# -- case 10: no silent precision loss ----------------------------------------------------

BIG = "123456789012345678901234567890"


def with_attributes(attributes: str) -> bytes:
    """The moment's wire JSON with `attributes` written as given (orjson cannot write them)."""
    return orjson.dumps(moment())[:-1] + b',"attributes":' + attributes.encode() + b"}"


def test_an_integer_beyond_64_bits_is_rejected_naming_its_field(services: Services) -> None:
    wire = with_attributes(f'{{"a":[1,{BIG}]}}')
    [(outcome, reason)] = record(services, wire)
    assert outcome == "quarantined"
    assert reason == (f"attributes.a[1]: {BIG} is an integer beyond 64 bits, which cannot be kept"
                      " exactly; send it as a string")
    assert services.ledger_store.stream(MID) == []
    [entry] = services.ledger_store.quarantine()
    assert entry.field == "attributes.a[1]" and entry.raw == wire
    # The largest integers 64 bits hold go in exactly, and long digit strings are only text.
    edge = with_attributes(f'{{"id":"{BIG}","u":18446744073709551615,"i":-9223372036854775808}}')
    assert outcomes(services, edge) == [Outcome.RECORDED]
    [event] = services.ledger_store.stream(MID)
    assert event.moment["attributes"] == {"id": BIG, "u": 2**64 - 1, "i": -(2**63)}


def test_a_number_is_reported_as_it_was_sent(services: Services) -> None:
    sent = orjson.dumps(moment()).replace(b'"reach":10', b'"reach":1e32')
    [(_, reason)] = record(services, sent)
    assert reason == "reach: expected a valid integer, got 1e32"
    huge = orjson.dumps(moment()).replace(b'"reach":10', b'"reach":100000000000000000000000000000000')
    [(_, reason)] = record(services, huge)
    assert reason == ("reach: 100000000000000000000000000000000 is an integer beyond 64 bits,"
                      " which cannot be kept exactly; send it as a string")
    [(_, reason)] = record(services, orjson.dumps(moment()).replace(b'"sentiment":0.5',
                                                                     b'"sentiment":15E-1'))
    assert reason == "sentiment: expected a number less than or equal to 1, got 15E-1"


def test_occurred_at_is_kept_to_the_microsecond_finer_digits_dropped(services: Services) -> None:
    ids = ["0b6b0f8e-1d2c-4e3f-9a1b-2c3d4e5f6a70", "0b6b0f8e-1d2c-4e3f-9a1b-2c3d4e5f6a71",
           "0b6b0f8e-1d2c-4e3f-9a1b-2c3d4e5f6a72"]
    sent = ["2026-03-01T10:00:00.123456789+01:00", "2026-03-01T09:00:00.1Z",
            "2026-03-01T09:00:00.9999999Z"]
    assert outcomes(services, *(moment(moment_id=i, occurred_at=t)
                                for i, t in zip(ids, sent, strict=True))) == [Outcome.RECORDED] * 3
    stored = [services.ledger_store.stream(i)[0].moment["occurred_at"] for i in ids]
    assert stored == ["2026-03-01T09:00:00.123456Z", "2026-03-01T09:00:00.100000Z",
                      "2026-03-01T09:00:00.999999Z"]


# -- through the command line: cases 14 and 16 --------------------------------------------


def mot(store: str, *args: str | Path) -> Result:
    result = CliRunner().invoke(cli, ["--store", store, *map(str, args)])
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_minus_zero_shows_the_same_incrementally_and_after_replay(
        store_url: str, tmp_path: Path) -> None:
    path = tmp_path / "moments.jsonl"
    path.write_bytes(orjson.dumps(moment()) + b"\n"
                     + b'{"type":"amend","moment_id":"' + MID.encode()
                     + b'","set":{"sentiment":-0.0},"reason":"neutral after all"}\n')
    mot(store_url, "import", "-q", path)
    mot(store_url, "project", "-q")
    incremental = mot(store_url, "query", "amplifications", "--format", "json").stdout
    mot(store_url, "replay", "-q")
    rebuilt = mot(store_url, "query", "amplifications", "--format", "json").stdout
    # Compared as text: in Python -0.0 == 0.0, and the sign is what differed.
    assert incremental == rebuilt
    [record] = json.loads(rebuilt)
    assert record["sentiment"] == 0.0 and "-0.0" not in rebuilt


def test_project_counts_events_not_positions_after_a_rolled_back_append(
        store_url: str, tmp_path: Path) -> None:
    services = open_store(store_url)
    try:
        # An append rolled back: PostgreSQL's sequence has handed out its positions for good.
        with pytest.raises(RuntimeError), services.ledger_store.transaction():
            lost = [moment(moment_id=None, source={"system": "lost", "id": str(n)})
                    for n in range(2000)]
            assert outcomes(services, *lost) == [Outcome.RECORDED] * 2000
            raise RuntimeError("rolled back")
        assert services.ledger_store.head() == 0
    finally:
        services.close()
    path = tmp_path / "moments.jsonl"
    count = 21_000  # over the threshold at which a first projection is a rebuild
    path.write_bytes(b"".join(
        orjson.dumps(moment(moment_id=None, source={"system": "crm", "id": str(n)})) + b"\n"
        for n in range(count)))
    mot(store_url, "import", "-q", path)
    out = mot(store_url, "project", "-q").stdout
    match = re.fullmatch(r"applied ([\d,]+) events; projections at ([\d,]+) of ([\d,]+)\n", out)
    assert match is not None, out
    assert int(match[1].replace(",", "")) == count
    assert match[2] == match[3]


def test_an_integer_beyond_64_bits_over_http_is_rejected_as_sent(store_url: str) -> None:
    """The API adds the token's tenant to a message that has none: that must not first turn
    the integer into a float (which the ledger could no longer tell from one sent as such)."""
    from http_support import api

    wire = with_attributes(f'{{"n":{BIG}}}').replace(b'"tenant":"acme",', b"")
    with api(store_url) as client:
        for body in (wire, with_attributes(f'{{"n":{BIG}}}')):
            answer = client.post("acme", b"[" + body + b"]")
            assert answer.status_code == 200, answer.text
            [item] = answer.json()["items"]
            assert (item["outcome"], item["field"]) == ("quarantined", "attributes.n")
            assert BIG in item["reason"]
        assert client.services.ledger_store.head() == 0


def test_a_reference_id_beyond_64_bits_is_rejected_not_rounded(store_url: str) -> None:
    """`"source": {"system": "crm", "id": 12345678901234567890123}` was recorded with the id
    '1.2345678901234568e+22' (orjson reads such an integer as a float, and a source id takes
    a number as text): another such id rounds to the same text and names the same moment. A
    reference id beyond 64 bits is now quarantined naming its field, as any other number."""
    from http_support import api

    def sent(name: str) -> bytes:
        body = moment(moment_id=None, source={"system": "crm", "id": 1})
        if name != "source":
            body[name] = {"system": "crm", "id": 1}
        text = orjson.dumps({k: v for k, v in body.items() if v is not None})
        at = text.index(b'"id":1}', text.index(f'"{name}"'.encode()))
        return text[:at] + f'"id":{BIG}}}'.encode() + text[at + len(b'"id":1}'):]

    with api(store_url) as client:
        for name in ("source", "in_reply_to", "shares"):
            answer = client.post("acme", b"[" + sent(name) + b"]")
            assert answer.status_code == 200, answer.text
            [item] = answer.json()["items"]
            assert (item["outcome"], item["field"], item["reason"]) == (
                "quarantined", f"{name}.id", f"{name}.id: {BIG} is an integer beyond 64 bits, "
                "which cannot be kept exactly; send it as a string"), name
        assert client.services.ledger_store.head() == 0
        exact = client.post("acme", b"[" + sent("source").replace(BIG.encode(), b"7") + b"]")
        assert exact.json()["counts"] == {"recorded": 1}


def test_checking_numbers_exactly_survives_deep_nesting_and_huge_literals() -> None:
    """The exact reading walks what orjson accepts: nested a thousand deep, or an integer of
    5,000 digits (more than Python's int() takes from text), is an answer, not a traceback."""
    from datetime import UTC, datetime

    from mot.domain.messages import RecordMoment, Rejection, parse_message

    now = datetime.now(UTC)
    deep = "[" * 1000 + BIG + "]" * 1000
    assert isinstance(parse_message(with_attributes(f'{{"a":{deep}}}'), now), Rejection)
    floats = "[" * 200 + "1e300" + "]" * 200  # a float that large is a float, kept as sent
    assert isinstance(parse_message(with_attributes(f'{{"a":{floats},"b":"{BIG}"}}'), now),
                      RecordMoment)
    huge = parse_message(with_attributes(f'{{"a":[{"9" * 5000}]}}'), now)
    assert isinstance(huge, Rejection)
    nested = parse_message(with_attributes(f'{{"a":[1,{{"b":[{BIG}]}}]}}'), now)
    assert nested == Rejection("attributes.a[1].b[0]", f"{BIG} is an integer beyond 64 bits,"
                               " which cannot be kept exactly; send it as a string")


@pytest.mark.parametrize("literal", ["1e2", "1.5"])
def test_a_reference_id_that_is_no_plain_integer_is_rejected_naming_it(
        services: Services, literal: str) -> None:
    """`"source": {"system": "x", "id": 1e2}` was recorded with the id '100.0' (SPEC §2: an
    id is text; an integer is taken as its digits, but a fraction or an exponent is not what
    the sender's system calls it). Quarantined naming the field, as a too long integer is."""
    for name in ("source", "in_reply_to", "shares"):
        body = moment(moment_id=None, source={"system": "x", "id": "s1"})
        body[name] = {"system": "x", "id": 7}
        if name == "shares":
            body["kind"] = "share"
        text = orjson.dumps({k: v for k, v in body.items() if v is not None})
        at = text.index(b'"id":7}')
        wire = text[:at] + f'"id":{literal}}}'.encode() + text[at + len(b'"id":7}'):]
        [(outcome, reason)] = record(services, wire)
        assert (outcome, reason) == ("quarantined", (
            f"{name}.id: {literal} is a number that is not a plain integer (a fraction or an "
            "exponent), which an id does not take; send it as a string")), name
    fix = amend({"in_reply_to": {"system": "x", "id": 1}})
    wire = orjson.dumps(fix).replace(b'"id":1}', f'"id":{literal}}}'.encode())
    [(outcome, reason)] = record(services, wire)
    assert (outcome, reason.split(":")[0]) == ("quarantined", "set.in_reply_to.id"), reason
    assert services.ledger_store.head() == 0
    # An integer id is still taken as its digits.
    assert outcomes(services, moment(moment_id=None, source={"system": "x", "id": 100})) == [
        Outcome.RECORDED]
