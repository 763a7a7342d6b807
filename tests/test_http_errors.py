"""Every 4xx and 5xx of the API has one shape: RFC 9457 problem details, documented per route.

Each kind of error is provoked for real (FastAPI's own 422, routing's 404 and 405, the
body limits, tokens, tenants, webhooks, a store that is gone) and each answer must be
`application/problem+json` with type, title, status, detail, code, field and errors; the
OpenAPI schema must document a Problem for every error status of every operation.
"""

from __future__ import annotations

from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import httpx
import orjson
import pytest
from http_support import Api, api

from mot.adapters.http.ingest import Limits
from mot.domain.messages import GIVEN_TWICE

MOMENT = {"customer_id": "c9", "occurred_at": "2026-03-01T09:00:00Z", "channel": "email",
          "direction": "outbound", "kind": "answer", "source": {"system": "crm", "id": "r-1"}}
KEYS = {"type", "title", "status", "detail", "code", "field", "errors"}


@pytest.fixture
def client(store_url: str) -> Iterator[Api]:
    with api(store_url, limits=Limits(max_body=4096, memory_budget=4096, max_items=3)) as a:
        yield a


def assert_problem(answer: httpx.Response, status: int, code: str,
                   field: str | None = None) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = orjson.loads(answer.content)
    assert set(problem) == KEYS
    assert problem["type"] == "about:blank"
    assert problem["status"] == status
    assert problem["title"] == HTTPStatus(status).phrase
    assert problem["code"] == code, problem
    assert problem["field"] == field, problem
    assert isinstance(problem["detail"], str) and problem["detail"]
    return problem


def test_every_error_is_a_problem(client: Api) -> None:
    http = client.client
    problem = assert_problem(client.get("acme", "/v1/relationships", stage="fan", limit=0),
                             422, "invalid_parameter", "stage")
    assert [e["field"] for e in problem["errors"]] == ["stage", "limit"]
    # In mot's words, as the wire format's rejections (pydantic's "Input should be ..." before).
    assert problem["detail"] == (
        "stage: expected 'stranger', 'acquainted', 'engaged', 'loyal', 'advocate' or 'detractor'"
        "; limit: expected a number greater than or equal to 1")
    assert_problem(client.get("acme", "/v1/relationships", stag="fan"), 400,
                   "unknown_parameter", "stag")
    # The last of two values was taken silently (stage=fan&stage=loyal answered loyal's rows).
    twice = assert_problem(client.get("acme", "/v1/relationships", limit=["1", "2"]), 400,
                           "repeated_parameter", "limit")
    assert twice["detail"] == "query parameter 'limit' given 2 times; it takes one value"
    assert_problem(client.get("acme", "/v1/relationships", stage=["fan", "loyal"]), 400,
                   "repeated_parameter", "stage")
    assert_problem(client.get("acme", "/v1/relationships", tenant="globex"), 403,
                   "other_tenant", "tenant")
    assert_problem(client.get("acme", "/v1/nothing"), 404, "not_found")
    assert_problem(http.delete("/v1/moments"), 405, "method_not_allowed")
    assert_problem(http.get("/v1/teams"), 401, "missing_token")
    assert_problem(http.get("/v1/teams", headers={"Authorization": "Bearer mot_x"}), 401,
                   "invalid_token")
    assert_problem(client.get("acme_write", "/v1/teams"), 403, "missing_scope")
    assert_problem(client.get("acme", "/v1/moments/nope"), 422, "invalid_parameter",
                   "moment_id")
    assert_problem(client.get("acme", "/v1/moments/6f1c9e2a-3b4d-4c5e-8f70-123456789abc"), 404,
                   "no_such_moment", "moment_id")
    assert_problem(client.post("acme", b"[{"), 400, "malformed_json")
    # Not UTF-8: said so, where (orjson's own words were "str is not valid UTF-8: surrogates
    # not allowed").
    latin = assert_problem(client.post("acme", b'{"customer_id": "caf\xe9"}'), 400,
                           "malformed_json")
    assert latin["detail"] == ("line 1: not UTF-8 text (byte 0xe9 at byte 21); send UTF-8;"
                               " nothing was recorded"), latin
    # An array nested deeper than the scanner that splits a batch can go (a 500 before).
    for source in ("/v1/moments", "/v1/webhooks/x"):
        deep = assert_problem(client.post("acme", b"[" * 2000 + b"]" * 2000, path=source),
                              400, "malformed_json")
        assert "nested deeper than 1,024 arrays and objects" in deep["detail"], deep
    assert_problem(client.post("acme", [MOMENT] * 4), 413, "too_many_items")
    assert_problem(client.post("acme", b" " * 5000), 413, "body_too_large")
    assert_problem(client.post("acme", b"{", path="/v1/webhooks/x"), 400, "malformed_json")
    assert_problem(client.post("acme", b"{}", path="/v1/webhooks/nosuch"), 422,
                   "invalid_parameter", "source")
    assert_problem(http.post("/v1/webhooks/x", content=b"{}"), 401, "missing_token")
    # A store that fails (its quarantine table gone): 503 with Retry-After.
    with client.services.backend.write() as tx:
        tx.execute("DROP TABLE quarantine")
    answer = client.post("acme", [{}])
    assert_problem(answer, 503, "store_unavailable")
    assert answer.headers["retry-after"] == "1"


def test_the_schema_documents_a_problem_for_every_error(client: Api) -> None:
    schema = client.client.get("/openapi.json").json()
    assert set(schema["components"]["schemas"]["Problem"]["required"]) == KEYS
    checked = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                content = response["content"]
                assert list(content) == ["application/problem+json"], (method, path, status)
                assert content["application/problem+json"]["schema"] == {
                    "$ref": "#/components/schemas/Problem"}
                checked += 1
            if operation.get("parameters") or "requestBody" in operation:
                assert "422" in operation["responses"] or path == "/v1/moments", (method, path)
    assert checked > 40
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def _nested(depth: int, at: int) -> bytes:
    """MOMENT with attributes that make it nest `depth` deep (itself the first level), its
    source id `r-{at}` (each message a moment of its own)."""
    inner = b"[" * (depth - 2) + b"]" * (depth - 2)  # in the message and its attributes
    message = orjson.dumps({**MOMENT, "source": {"system": "crm", "id": f"r-{at}"}})
    return message[:-1] + b',"attributes":{"a":' + inner + b"}}"


def test_a_batch_nests_as_deep_in_either_form_and_past_it_names_the_limit(store_url: str) -> None:
    """The array form of a batch was split by a scanner that recursed a level at a time and
    gave up at ~950 levels (under the server's stack), so a message nested 950-1,024 deep
    refused the whole array (400 'nested too deeply') while the same message sent as NDJSON
    was read (and quarantined, its attributes being deeper than the ledger stores). One limit
    now, the parser's 1,024 levels, for both forms and for webhooks; past it the 400 names
    it."""
    with api(store_url, limits=Limits(max_body=1 << 20)) as client:
        at = 0
        for depth in (900, 960, 1000, 1024):
            for form in ("ndjson", "array"):
                at += 1
                message = _nested(depth, at)
                body = message if form == "ndjson" else b"[" + message + b"]"
                answer = client.post("acme", body)
                assert answer.status_code == 200, (depth, form, answer.text)
                [item] = orjson.loads(answer.content)["items"]
                assert item["outcome"] == "quarantined", (depth, form, item)
                assert item["field"] == "attributes", item
        for body in (_nested(1025, 99), b"[" + _nested(1025, 99) + b"]",
                     b"[" + _nested(10, 98) + b"," + _nested(1025, 99) + b"]"):
            deep = assert_problem(client.post("acme", body), 400, "malformed_json")
            assert "nested deeper than 1,024 arrays and objects" in deep["detail"], deep
            assert deep["detail"].endswith("(the most mot reads); nothing was recorded"), deep
        deep = assert_problem(client.post("acme", b"[" * 2000 + b"]" * 2000, path="/v1/webhooks/x"),
                              400, "malformed_json")
        assert "nested deeper than 1,024 arrays and objects" in deep["detail"], deep
        # Brackets inside strings are no nesting; an element whose string never closes is
        # still refused as the JSON it is not.
        tricky = b"[" + _nested(1000, 97).replace(b'"crm"', b'"c]]}{[rm\\"x"') + b"]"
        assert client.post("acme", tricky).status_code == 200
        assert_problem(client.post("acme", b"[" + b"[" * 1000 + b'"open ]]]'), 400,
                       "malformed_json")


def test_POST_v1_erasures_refuses_text_holding_nul_naming_the_field(store_url: str) -> None:
    """No customer id of the ledger holds U+0000 (the wire format refuses it), yet POST
    /v1/erasures of "a\\u0000" erased: a receipt for an id nothing can hold, its reason
    (U+0000 too) kept in it. Each text of the request is now a 422 naming the field,
    as a query's `customer` is; nothing erased."""
    with api(store_url) as client:
        _, admin = client.services.access.create("acme", "admin", label="dpo")
        client.tokens["acme_admin"] = admin
        body = {"customer_id": "c9", "reason": "GDPR request 2026-120", "tenant": "acme"}
        for field in ("customer_id", "reason", "tenant"):
            for dry_run in (True, False):
                answer = client.post("acme_admin", orjson.dumps(
                    {**body, field: body[field] + "\u0000", "dry_run": dry_run}),
                    path="/v1/erasures")
                problem = assert_problem(answer, 422, "invalid_parameter", f"body.{field}")
                assert "without a NUL character" in problem["detail"], problem
        assert client.services.erasures.receipts("acme") == []
        done = client.post("acme_admin", orjson.dumps(body), path="/v1/erasures")
        assert done.status_code == 200, done.text



def test_an_alert_id_holding_nul_is_a_422_not_a_store_error(store_url: str) -> None:
    """POST /v1/alerts/a%00/ack answered 503 'the store is unavailable (DataError); retry
    later' on PostgreSQL (which cannot compare text with U+0000), a reply a client retries
    for ever; it is a 422 naming alert_id, as a query's parameters holding it are."""
    with api(store_url) as client:
        answer = client.client.post("/v1/alerts/a%00/ack", headers=client.auth("acme"))
        problem = assert_problem(answer, 422, "invalid_parameter", "alert_id")
        assert "without a NUL character" in problem["detail"], problem
        missing = client.client.post("/v1/alerts/a/ack", headers=client.auth("acme"))
        assert_problem(missing, 404, "not_found", "alert_id")


def test_a_vendor_record_whose_unmappable_reason_quotes_nul_is_quarantined(
        store_url: str) -> None:
    """A webhook body the x and mentions mappings cannot map names what it holds in its
    reason; with a U+0000 there, PostgreSQL could not keep the entry, and the request was a
    503 'the store is unavailable (DataError); retry later' (a write token's way to have its
    own retries spin). It is quarantined, the character written \\u0000, on either store."""
    body = b'{"id": "a\\u0000", "ticket_id": "TID\\u0000", "k\\u0000": 1, "text": "\\u0000"}'
    with api(store_url) as client:
        for source in ("x", "mentions"):
            answer = client.post("acme", body.replace(b"TID", source.encode()),
                                 path=f"/v1/webhooks/{source}")
            assert answer.status_code == 200, (source, answer.text)
            assert [i["outcome"] for i in answer.json()["items"]] == ["quarantined"], source
        kept = client.services.quarantine.entries()
        assert [e.raw for e in kept] == [body.replace(b"TID", b"x"),
                                         body.replace(b"TID", b"mentions")], kept
        assert not any("\x00" in e.reason or "\x00" in e.field for e in kept), kept


def test_a_422_speaks_mots_words_not_pydantics(store_url: str) -> None:
    """POST /v1/erasures answered `[]` with "body: Input should be a valid dictionary or
    instance of ErasureRequest" (a class name of ours), an unknown field with "Extra inputs
    are not permitted", a text for a boolean with "Input should be a valid boolean": pydantic's
    words, where the wire format says "expected ..." and "unknown field". Each 422 now says
    what is expected in the wire format's words."""
    with api(store_url) as client:
        _, admin = client.services.access.create("acme", "admin", label="dpo")
        client.tokens["acme_admin"] = admin
        body = {"customer_id": "c9", "reason": "GDPR request 2026-121"}
        for sent, field, message in (
                ([], "body", "expected a JSON object"),
                ({**body, "dryrun": True}, "body.dryrun",
                 "unknown field (not a field of this request)"),
                ({**body, "dry_run": "yes"}, "body.dry_run", "expected a valid boolean"),
                ({**body, "customer_id": 42}, "body.customer_id", "expected a valid string"),
                ({**body, "reason": ""}, "body.reason", "expected at least 1 character")):
            answer = client.post("acme_admin", orjson.dumps(sent), path="/v1/erasures")
            problem = assert_problem(answer, 422, "invalid_parameter", field)
            assert problem["errors"] == [{"field": field, "message": message}], problem
            assert problem["detail"] == f"{field}: {message}", problem
        assert client.services.erasures.receipts("acme") == []



def test_POST_v1_erasures_refuses_a_field_given_twice(store_url: str) -> None:
    """`{"dry_run": true, ..., "dry_run": false}` erased the person for good: JSON keeps the
    last value, so what the sender read as a dry run was an erasure, without a word. A field
    given twice in the body is now a 422 naming it (the wire format's words for a moment's
    field given twice), and nothing is erased."""
    with api(store_url) as client:
        _, admin = client.services.access.create("acme", "admin", label="dpo")
        client.tokens["acme_admin"] = admin
        assert client.post("acme", orjson.dumps(MOMENT)).status_code == 200
        for body, field in (
                (b'{"customer_id": "c9", "reason": "GDPR 1", "dry_run": true, "dry_run": false}',
                 "body.dry_run"),
                (b'{"customer_id": "c8", "customer_id": "c9", "reason": "GDPR 1"}',
                 "body.customer_id")):
            problem = assert_problem(client.post("acme_admin", body, path="/v1/erasures"),
                                     422, "invalid_parameter", field)
            assert problem["detail"] == f"{field}: {GIVEN_TWICE}", problem
        assert client.services.erasures.receipts("acme") == []
        assert [r["customer_id"] for r in client.get(
            "acme", "/v1/relationships", refresh="true").json()] == ["c9"]
