"""The HTTP API over a real store (SQLite and PostgreSQL): ingest, queries, history, health, metrics.

The queries must answer exactly what `mot query NAME --format json` prints for the
same filters, and a batch what `mot import` would record.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from http_support import Api, api, golden_lines

from mot.adapters.http.bodies import MalformedBody, TooManyItems, split_batch
from mot.adapters.http.ingest import Limits
from mot.cli.main import cli
from mot.domain.ledger import Outcome

NAMES = ("relationships", "reciprocity", "transitions", "amplifications", "teams", "listening")
MOMENT = {"customer_id": "c9", "occurred_at": "2026-03-01T09:00:00Z", "channel": "email",
          "direction": "outbound", "kind": "answer", "source": {"system": "crm", "id": "r-1"}}


@pytest.fixture
def client(store_url: str) -> Iterator[Api]:
    with api(store_url) as a:
        yield a


@pytest.fixture
def loaded(client: Api, golden_path: Path) -> Api:
    """The golden fixture posted through the API: acme's lines with acme's token, globex's
    with globex's."""
    answer = client.post("acme", b"\n".join(golden_lines(golden_path, "acme")))
    assert answer.status_code == 200, answer.text
    assert answer.json()["counts"] == {"recorded": 32, "amended": 1, "retracted": 1, "duplicate": 1}
    answer = client.post("globex", b"\n".join(golden_lines(golden_path, "globex",
                                                           corrections=False)))
    assert answer.json()["counts"] == {"recorded": 1}
    return client


def cli_query(store: str, name: str, *extra: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(cli, ["--store", store, "query", name, "--format", "json",
                                      "--no-refresh", *extra])
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert isinstance(records, list)
    return records


def test_every_query_answers_what_mot_query_prints(loaded: Api, store_url: str,
                                                   golden_expected: dict[str, Any]) -> None:
    for name in NAMES:
        answer = loaded.get("acme", f"/v1/{name}", refresh="true")
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/json"
        records = answer.json()
        # Same JSON as the CLI (which also computes `lapsed` against now), same order.
        assert records == cli_query(store_url, name, "--tenant", "acme"), name
        expected = [r for r in golden_expected[name] if r["tenant"] == "acme"]
        assert len(records) == len(expected), name
        for want in expected:
            assert any(all(got.get(k) == v for k, v in want.items()) for got in records), (name, want)


@pytest.mark.parametrize(("name", "params", "flags"), [
    ("relationships", {"stage": "detractor"}, ["--stage", "detractor"]),
    ("relationships", {"customer": "c1"}, ["--customer", "c1"]),
    ("relationships", {"since": "2026-03-01T00:00:00Z", "until": "2026-03-02T00:00:00+01:00"},
     ["--since", "2026-03-01T00:00:00Z", "--until", "2026-03-02T00:00:00+01:00"]),
    ("reciprocity", {"status": "stop_asking"}, ["--status", "stop_asking"]),
    ("reciprocity", {"sort": "-balance", "limit": 2}, ["--sort", "-balance", "--limit", "2"]),
    ("transitions", {"customer": "c1", "stage": "detractor"},
     ["--customer", "c1", "--stage", "detractor"]),
    ("amplifications", {"polarity": "negative", "sort": "cascade_reach"},
     ["--polarity", "negative", "--sort", "cascade_reach"]),
    ("amplifications", {"function": "sales"}, ["--function", "sales"]),
    ("teams", {"function": "service"}, ["--function", "service"]),
    ("listening", {"as_of": "2026-03-01T12:00:00Z"}, ["--as-of", "2026-03-01T12:00:00Z"]),
    ("relationships", {"as_of": "2026-03-01T12:00:00Z", "stage": "acquainted"},
     ["--as-of", "2026-03-01T12:00:00Z", "--stage", "acquainted"]),
    ("amplifications", {"as_of": "2026-02-01T00:00:00Z", "sort": "reach", "limit": 1},
     ["--as-of", "2026-02-01T00:00:00Z", "--sort", "reach", "--limit", "1"]),
    ("persons", {"customer": "c1"}, ["--customer", "c1"]),
    ("persons", {"min_ids": 1, "sort": "customer_id", "limit": 2},
     ["--min-ids", "1", "--sort", "customer_id", "--limit", "2"]),
    ("persons", {"suspect": "true"}, ["--suspect"]),
])
def test_filters_are_those_of_mot_query(loaded: Api, store_url: str, name: str,
                                        params: dict[str, Any], flags: list[str]) -> None:
    loaded.services.projections.project()
    answer = loaded.get("acme", f"/v1/{name}", **params)
    assert answer.status_code == 200, answer.text
    assert answer.json() == cli_query(store_url, name, "--tenant", "acme", *flags)


def test_a_person_by_any_id_in_the_tokens_tenant_only(loaded: Api) -> None:
    answer = loaded.get("acme", "/v1/persons/c1", refresh="true")
    assert answer.status_code == 200, answer.text
    person = answer.json()
    assert (person["tenant"], person["customer_id"], person["customer_ids"]) == (
        "acme", "c1", ["c1"])
    assert person["links"] == [] and person["moments"]["c1"] > 0 and not person["suspect"]
    # globex's token sees globex's c1 (another person with the same id), never acme's.
    other = loaded.get("globex", "/v1/persons/c1").json()
    assert other["tenant"] == "globex" and other["moments"] != person["moments"]
    answer = loaded.get("acme", "/v1/persons/nobody")
    assert answer.status_code == 404 and answer.json()["code"] == "no_such_person"


def test_bad_filters_are_400_or_422_naming_the_problem(loaded: Api) -> None:
    answer = loaded.get("acme", "/v1/reciprocity", sort="nonsense")
    assert answer.status_code == 422
    problem = answer.json()
    assert problem["field"] == "sort" and problem["code"] == "invalid_parameter"
    assert "balance" in problem["errors"][0]["message"]  # the pattern names the fields
    # In words, not the regular expression: "String should match pattern '^[+-]?(...)$'".
    assert problem["detail"] == (
        "sort: expected FIELD, -FIELD or +FIELD with FIELD one of tenant, customer_id, given,"
        " asked, received, balance, unanswered_asks, status, version; got 'nonsense'")
    answer = loaded.get("acme", "/v1/moments/nonsense")
    assert (answer.status_code, answer.json()["detail"]) == (422, (
        "moment_id: expected a moment id (a UUID) or SYSTEM:ID, the source of a moment;"
        " got 'nonsense'"))
    answer = loaded.get("acme", "/v1/relationships", customer="a\x00b")
    assert (answer.status_code, answer.json()["detail"]) == (422, (
        "customer: expected text without a NUL character (\\u0000); got 'a\\x00b'"))
    answer = loaded.get("acme", "/v1/reciprocity", stage="loyal")  # not a filter of reciprocity
    assert answer.status_code == 400
    assert answer.json()["detail"].startswith("unknown query parameter 'stage' (expected: ")
    assert loaded.get("acme", "/v1/relationships", since="2026-03-01T00:00:00").status_code == 422
    assert loaded.get("acme", "/v1/relationships", stage="fan").status_code == 422
    assert loaded.get("acme", "/v1/relationships", limit=0).status_code == 422
    # A time past the end of year 9999 in UTC (or before year 1) is the end of the range.
    answer = loaded.get("acme", "/v1/relationships", as_of="9999-12-31T23:59:59-23:59")
    assert answer.status_code == 200
    answer = loaded.get("acme", "/v1/relationships", until="0001-01-01T00:00:05+00:04")
    assert answer.status_code == 200 and answer.json() == []
    assert loaded.get("acme", "/v1/relationships", as_of="1700000000").status_code == 422


def test_json_array_and_ndjson_are_the_same_batch(client: Api, golden_path: Path) -> None:
    lines = golden_lines(golden_path, "acme")
    array = client.post("acme", [orjson.loads(line) for line in lines],
                        headers={"Content-Type": "application/json"})
    assert array.status_code == 200
    assert array.json()["counts"]["recorded"] == 32
    again = client.post("acme", b"\r\n\n".join(lines) + b"\n",
                        headers={"Content-Type": "application/x-ndjson"})
    assert again.json()["counts"] == {"duplicate": 35}
    assert [i["moment_id"] for i in again.json()["items"]] == \
           [i["moment_id"] for i in array.json()["items"]]
    single = client.post("acme", orjson.dumps(orjson.loads(lines[0]), option=orjson.OPT_INDENT_2))
    assert single.json()["counts"] == {"duplicate": 1}
    empty = client.post("acme", b"[]").json()
    assert (empty["counts"], empty["items"], empty["tenant"]) == ({}, [], "acme")


def test_each_item_gets_its_answer_and_quarantined_ones_are_kept(client: Api) -> None:
    batch = [
        MOMENT,
        MOMENT,  # the same again in the batch: a duplicate
        {**MOMENT, "source": {"system": "crm", "id": "r-2"}, "kind": "purchase"},
        {**MOMENT, "source": {"system": "crm", "id": "r-3"}, "shoe_size": 44},
        [1, 2],
    ]
    answer = client.post("acme", batch)
    assert answer.status_code == 200
    body = answer.json()
    assert answer.headers["x-request-id"] == body["request_id"]
    items = body["items"]
    assert [i["outcome"] for i in items] == ["recorded", "duplicate", "quarantined", "quarantined",
                                             "quarantined"]
    assert [i["index"] for i in items] == [0, 1, 2, 3, 4]
    assert items[2]["field"] == "kind"
    assert "'purchase' is not a kind of direction 'outbound'" in items[2]["reason"]
    assert items[3]["field"] == "shoe_size"
    assert items[4]["reason"] == "expected a JSON object, got an array"
    assert items[0]["field"] is None and items[0]["reason"] is None
    kept = client.services.ledger_store.quarantine()
    assert len(kept) == 3
    assert {q.origin for q in kept} == {f"http:acme:{body['request_id']}#{i}" for i in (2, 3, 4)}
    # A moment without a tenant got the token's; the quarantine keeps the bytes as sent.
    assert b'"tenant"' not in kept[0].raw and kept[0].payload is not None
    assert orjson.loads(kept[0].payload)["tenant"] == "acme"
    history = client.services.ledger_store.stream(items[0]["moment_id"])
    assert history[0].moment["tenant"] == "acme"  # type: ignore[union-attr]


def test_amend_and_retract_of_the_tenants_own_moment(client: Api) -> None:
    first = client.post("acme", [MOMENT]).json()["items"][0]
    moment_id = first["moment_id"]
    batch = [{"type": "amend", "moment_id": moment_id, "set": {"actor": "kim"}, "reason": "who"},
             {"type": "retract", "moment_id": moment_id, "reason": "sent in error"}]
    answer = client.post("acme_write", batch).json()
    assert [i["outcome"] for i in answer["items"]] == [Outcome.AMENDED.value, Outcome.RETRACTED.value]
    # A moment and its amendment in one batch.
    new = {**MOMENT, "source": {"system": "crm", "id": "r-9"}}
    new_id = client.post("acme", [new]).json()["items"][0]["moment_id"]
    client.post("acme", [{"type": "retract", "moment_id": new_id, "reason": "undo"}])
    other = {**MOMENT, "moment_id": "6f1c9e2a-3b4d-4c5e-8f70-123456789abc"}
    answer = client.post("acme", [other, {"type": "amend", "moment_id": other["moment_id"],
                                          "set": {"reach": 3}, "reason": "count"}]).json()
    assert [i["outcome"] for i in answer["items"]] == ["recorded", "amended"]


def test_malformed_json_is_400_naming_the_line_and_records_nothing(client: Api) -> None:
    good = orjson.dumps(MOMENT)
    answer = client.post("acme", b"\n".join([good, b"", b'{"customer_id": "c1",']))
    assert answer.status_code == 400
    assert answer.json()["detail"].startswith("line 3: not valid JSON")
    answer = client.post("acme", b'[{"a": 1},')
    assert answer.status_code == 400 and "not valid JSON" in answer.json()["detail"]
    answer = client.post("acme", b"  \n ")  # no lines: an empty batch, like []
    assert answer.status_code == 200 and answer.json()["items"] == []
    answer = client.post("acme", b"\xff\xfe")
    assert answer.status_code == 400
    assert client.services.ledger_store.head() == 0
    assert client.services.ledger_store.quarantine_count() == 0


def test_body_over_the_limit_is_413_declared_or_chunked(store_url: str) -> None:
    with api(store_url, max_body=4096) as client:
        big = orjson.dumps([MOMENT] * 40)
        assert len(big) > 4096
        answer = client.post("acme", big)
        assert answer.status_code == 413
        assert "4,096 bytes" in answer.json()["detail"]

        def chunks() -> Iterator[bytes]:
            for _ in range(20):
                yield b" " * 512

        answer = client.client.post("/v1/moments", content=chunks(), headers=client.auth("acme"))
        assert answer.status_code == 413
        # Not even a webhook gets past it.
        answer = client.post("acme", big, path="/v1/webhooks/x")
        assert answer.status_code == 413
        assert client.services.ledger_store.head() == 0
        assert client.post("acme", [MOMENT]).status_code == 200


def test_moment_history_as_mot_show(loaded: Api, store_url: str) -> None:
    shown = CliRunner().invoke(cli, ["--store", store_url, "show", "zendesk:z-100", "--tenant",
                                     "globex", "--format", "json"])
    answer = loaded.get("globex", "/v1/moments/zendesk:z-100")
    assert answer.status_code == 200
    assert answer.json() == json.loads(shown.stdout)
    moment_id = answer.json()[0]["moment"]["moment_id"]
    assert loaded.get("globex", f"/v1/moments/{moment_id.upper()}").json() == answer.json()
    assert loaded.get("acme", f"/v1/moments/{moment_id}").status_code == 404  # globex's
    assert loaded.get("globex", "/v1/moments/not-a-reference").status_code == 422


def test_health_metrics_and_docs(loaded: Api) -> None:
    assert loaded.client.get("/healthz").json() == {"status": "ok"}
    loaded.get("acme", "/v1/teams", refresh="true")
    metrics = loaded.client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'mot_http_requests_total{method="POST",route="/v1/moments",status="200"} 2.0' in text
    assert 'mot_ingest_messages_total{entry="moments",outcome="recorded"} 33.0' in text
    assert "mot_ledger_head 35.0" in text
    assert "mot_projection_lag 0.0" in text
    assert "mot_store_up 1.0" in text
    assert "acme" not in text and "globex" not in text  # no tenant in the metrics
    assert loaded.client.get("/docs").status_code == 200
    paths = loaded.client.get("/openapi.json").json()["paths"]
    assert {f"/v1/{name}" for name in NAMES} <= set(paths)


def test_background_projector_keeps_queries_current(store_url: str) -> None:
    from fastapi.testclient import TestClient

    from mot.adapters.http.app import create_app
    from mot.bootstrap import open_store

    services = open_store(store_url)
    try:
        access = services.access
        _, token = access.create("acme", "read,write")
        headers = {"Authorization": f"Bearer {token}"}
        with TestClient(create_app(services, access=access, project_every=0.05)) as client:
            client.post("/v1/moments", content=orjson.dumps([MOMENT]), headers=headers)
            for _ in range(100):
                rows = client.get("/v1/relationships", headers=headers).json()
                if rows:
                    break
                import time

                time.sleep(0.05)
            assert [r["customer_id"] for r in rows] == ["c9"]
    finally:
        services.close()


def test_text_with_nul_is_quarantined_not_recorded(client: Api) -> None:
    """PostgreSQL cannot store U+0000 in text: recorded, it would stop every projection.
    Quarantined naming the field that holds it, in the answer and the quarantine."""
    batch = [{**MOMENT, "customer_id": "a\u0000b"},
             {**MOMENT, "source": {"system": "crm", "id": "r-2"}, "attributes": {"k\u0000": 1}},
             {**MOMENT, "source": {"system": "crm", "id": "r-3"}, "actor": "back\\u0000slash"}]
    items = client.post("acme", batch).json()["items"]
    assert [i["outcome"] for i in items] == ["quarantined", "quarantined", "recorded"]
    # Each names its field, as `mot import` does (the answer said field "" before).
    assert [(i["field"], i["reason"]) for i in items[:2]] == [
        ("customer_id", "customer_id: contains a NUL character (U+0000), which text fields "
                        "cannot hold"),
        ("attributes.k\\u0000", "attributes.k\\u0000: contains a NUL character (U+0000), which "
                               "text fields cannot hold")]
    kept = client.services.quarantine.entries()
    assert sorted(e.field for e in kept) == ["attributes.k\\u0000", "customer_id"]
    assert client.services.ledger_store.quarantine_count() == 2
    answer = client.get("acme", "/v1/relationships", refresh="true")
    assert answer.status_code == 200
    assert [r["customer_id"] for r in answer.json()] == ["c9"]


def test_a_batch_is_recorded_in_chunks_and_answered_as_one(store_url: str) -> None:
    limits = Limits(max_items=7, chunk=3)
    with api(store_url, limits=limits) as client:
        moments = [{**MOMENT, "source": {"system": "crm", "id": f"r-{n}"}} for n in range(6)]
        moments[4] = {"customer_id": "c9"}  # quarantined, in the second chunk
        # The array's items are recorded as sent (not re-encoded), spaces and all.
        body = b"[ " + b" ,\n".join(orjson.dumps(m) for m in moments) + b", {\"x\": \"\xc3\xa9\"} ]"
        answer = client.post("acme", body)
        assert answer.status_code == 200, answer.text
        items = answer.json()["items"]
        assert [i["index"] for i in items] == list(range(7))
        assert [i["outcome"] for i in items] == ["recorded"] * 4 + ["quarantined", "recorded",
                                                                    "quarantined"]
        assert answer.json()["counts"] == {"recorded": 5, "quarantined": 2}
        kept = sorted(client.services.ledger_store.quarantine(), key=lambda q: q.origin)
        assert [q.raw for q in kept] == [orjson.dumps(moments[4]), b'{"x": "\xc3\xa9"}']
        # One more than the limit: 413, and nothing of it recorded.
        head = client.services.ledger_store.head()
        more = [{**MOMENT, "source": {"system": "crm", "id": f"s-{n}"}} for n in range(8)]
        for body in (orjson.dumps(more), b"\n".join(orjson.dumps(m) for m in more)):
            answer = client.post("acme", body)
            assert answer.status_code == 413
            assert answer.json()["detail"].startswith("the batch holds more than 7 messages")
        assert client.post("acme", more[:7]).status_code == 200
        assert client.services.ledger_store.head() == head + 7


@pytest.mark.parametrize("body", [b"[{}, ]", b"[{} {}]", b"[{}] x", b"[NaN]", b"[{}, Infinity]",
                                  b"[1e400]", b'["\\ud800"]', b"[{\"a\": 1}", b"[\xff]"])
def test_a_malformed_array_anywhere_records_nothing(body: bytes) -> None:
    with pytest.raises(MalformedBody, match="not valid JSON"):
        split_batch(body)


def test_split_batch_finds_each_message_as_sent() -> None:
    body = b' [ {"a": [1, {"b": "],["}]} ,\t"\xe2\x82\xac" , 3 ] \n'
    batch = split_batch(body)
    assert [raw for chunk in batch.chunks(2) for raw, _ in chunk] == [
        b'{"a": [1, {"b": "],["}]}', b'"\xe2\x82\xac"', b"3"]
    assert len(split_batch(b"[ ]")) == 0 and len(split_batch(b"\n\n")) == 0
    # Chunks across the messages kept by the first pass and those decoded again.
    lines = b"\n".join(b'{"n": %d}' % n for n in range(7)) + b"\n  {\"n\": 7}  \n"
    chunks = list(split_batch(lines, keep=2).chunks(3))
    assert [[d["n"] for _, d in chunk] for chunk in chunks] == [[0, 1, 2], [3, 4, 5], [6, 7]]
    assert chunks[2][1][0] == b'{"n": 7}'
    assert [d for chunk in split_batch(b'{"a": 1}\n\n {"b": 2} \n').chunks(5)
            for _, d in chunk] == [{"a": 1}, {"b": 2}]
    with pytest.raises(TooManyItems):
        split_batch(b"[1, 2, 3]", max_items=2)


def test_a_field_given_twice_is_quarantined_naming_it(client: Api) -> None:
    """One item of a batch gives `customer_id` twice: it is quarantined naming the field,
    not recorded under the last value; the others record."""
    twice = orjson.dumps({**MOMENT, "source": {"system": "crm", "id": "r-2"}})[:-1] + b',"customer_id":"c8"}'
    body = b"[" + orjson.dumps(MOMENT) + b"," + twice + b"]"
    items = client.post("acme", body).json()["items"]
    assert [i["outcome"] for i in items] == ["recorded", "quarantined"]
    assert items[1]["reason"].startswith("customer_id: is given more than once in its object")
    assert client.services.ledger_store.quarantine_count() == 1
