"""Responses and response times (SPEC §3.5) end to end: `mot import`, `mot project`, `mot query
responses|response-times` in every format, `--open`, `--overdue` against mot.toml's targets at
an as-of time, the other filters, the HTTP API, `mot replay`, and a store made before responses
upgraded in place; on SQLite and on real PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from cli_support import mot, query
from http_support import api, golden_lines
from responses_support import GOLDEN_RESPONSE_TIMES, GOLDEN_RESPONSES

from mot.bootstrap import open_store
from mot.service.targets import NO_TARGETS, Targets

MOT_TOML = """\
[targets.first_response]
other = "1d"          # c4's feedback (2026-01-07T10:00Z) is overdue from 2026-01-08T10:00Z
service = "4h"        # globex's question (2026-03-05T09:00Z) from 13:00Z

[tenants.globex.targets.first_response]
service = "2h"        # ... but globex answers service requests within 2 hours: from 11:00Z
"""


def without_version(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "version"} for r in records]


def ids(records: list[dict[str, Any]]) -> list[str]:
    return [r["request_moment_id"][:8] for r in records]


@pytest.fixture
def golden_store(store_url: str, golden_path: Path) -> str:
    mot(store_url, "import", "-q", golden_path)
    mot(store_url, "project", "-q")
    return store_url


def test_the_golden_responses_exact_and_after_a_replay(golden_store: str) -> None:
    records = query(golden_store, "responses")
    assert without_version(records) == GOLDEN_RESPONSES
    assert all(r["version"] > 0 for r in records)
    assert query(golden_store, "response-times") == GOLDEN_RESPONSE_TIMES
    mot(golden_store, "replay", "-q")
    assert without_version(query(golden_store, "responses")) == GOLDEN_RESPONSES
    assert query(golden_store, "response-times") == GOLDEN_RESPONSE_TIMES


def test_filters(golden_store: str) -> None:
    assert ids(query(golden_store, "responses", "--open")) == ["2287b9a5", "e10b4ac6"]
    assert ids(query(golden_store, "responses", "--kind", "complaint")) == ["0d4bcfe2"]
    assert ids(query(golden_store, "responses", "--function", "product")) == ["ff3933e0"]
    assert ids(query(golden_store, "responses", "--customer", "c4")) == ["0d4bcfe2", "2287b9a5"]
    assert ids(query(golden_store, "responses", "--tenant", "globex")) == ["e10b4ac6"]
    assert ids(query(golden_store, "responses", "--open", "--tenant", "acme")) == ["2287b9a5"]
    assert ids(query(golden_store, "responses", "--sort", "occurred_at", "--limit", "2")) == [
        "0d4bcfe2", "2287b9a5"]
    assert ids(query(golden_store, "responses", "--since", "2026-02-01", "--until",
                     "2026-03-31")) == ["e10b4ac6", "ff3933e0"]
    # As of a time between c4's complaint and its apology, the complaint was open.
    as_of = query(golden_store, "responses", "--as-of", "2026-01-05T08:30:00Z", "--open")
    assert ids(as_of) == ["0d4bcfe2"] and as_of[0]["response_seconds"] is None
    assert query(golden_store, "response-times", "--tenant", "acme", "--function",
                 "logistics") == [GOLDEN_RESPONSE_TIMES[0]]
    assert query(golden_store, "response-times", "--as-of", "2026-01-05T08:30:00Z") == [
        {"tenant": "acme", "function": "logistics", "requests": 1, "answered": 0, "open": 1,
         "response_p50_seconds": None, "response_p90_seconds": None}]
    wrong = mot(golden_store, "query", "teams", "--open", ok=False)
    assert wrong.exit_code == 2 and "--open/--overdue do not apply to teams" in wrong.output
    wrong = mot(golden_store, "query", "response-times", "--kind", "question", ok=False)
    assert wrong.exit_code == 2 and "--kind does not apply to response-times" in wrong.output


def test_overdue_against_the_targets_at_the_as_of_time(golden_store: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "targets.toml"
    config.write_text(MOT_TOML)

    def overdue(as_of: str) -> list[str]:
        return ids(query(golden_store, "responses", "--overdue", "--config", str(config),
                         "--as-of", as_of))

    assert overdue("2026-01-08T10:00:00Z") == []  # exactly the target is not past it
    assert overdue("2026-01-08T10:00:01Z") == ["2287b9a5"]
    assert overdue("2026-03-05T11:00:00Z") == ["2287b9a5"]
    assert overdue("2026-03-05T11:00:01Z") == ["2287b9a5", "e10b4ac6"]  # globex's own target
    # c4's complaint was open, but logistics has no target: never overdue.
    assert overdue("2026-01-05T08:59:00Z") == []
    # Without --as-of, now; ./mot.toml is read when present.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mot.toml").write_text(MOT_TOML)
    assert ids(query(golden_store, "responses", "--overdue", "--limit", "1")) == ["2287b9a5"]
    (tmp_path / "mot.toml").write_text("[targets.first_response]\nservice = \"4x\"\n")
    bad = mot(golden_store, "query", "responses", "--overdue", ok=False)
    assert bad.exit_code == 1 and ("mot.toml: targets.first_response.service: '4x' is not a "
                                   "duration like 4h, 90m, 1d") in bad.output
    (tmp_path / "mot.toml").write_text("tenant = \"acme\"\n")
    none = mot(golden_store, "query", "responses", "--overdue", ok=False)
    assert none.exit_code == 2 and NO_TARGETS in " ".join(none.output.split())


def test_every_format(golden_store: str) -> None:
    lines = mot(golden_store, "query", "responses", "--format", "jsonl").stdout.splitlines()
    assert without_version([orjson.loads(line) for line in lines]) == GOLDEN_RESPONSES
    rows = list(csv.DictReader(io.StringIO(
        mot(golden_store, "query", "response-times", "--format", "csv").stdout)))
    assert list(rows[0]) == list(GOLDEN_RESPONSE_TIMES[0])
    assert [(r["function"], r["requests"], r["response_p50_seconds"]) for r in rows] == [
        ("logistics", "1", "3600"), ("other", "1", ""), ("product", "1", "300"),
        ("service", "1", "")]
    for name in ("responses", "response-times"):
        table = mot(golden_store, "query", name, "--format", "table",
                    env={"COLUMNS": "80"}).stdout
        assert max(len(line) for line in table.splitlines()) <= 80, table
    table = mot(golden_store, "query", "responses", "--format", "table",
                env={"COLUMNS": "80"}).stdout
    assert table.splitlines()[0].split() == ["tenant", "customer_id", "kind", "function",
                                             "occurred_at", "response_seconds"]
    assert "1h 0m" in table and "5m 0s" in table
    times = mot(golden_store, "query", "response-times", "--format", "table",
                env={"COLUMNS": "80"}).stdout
    assert "response_p90_seconds" in times.splitlines()[0]


def test_the_responses_view_says_which_requests_wait_and_how_long(golden_store: str) -> None:
    with open_store(golden_store) as services, services.backend.read() as tx:
        rows = tx.query("SELECT request_moment_id, is_open, waiting_seconds FROM responses_view"
                        " ORDER BY request_moment_id")
    now = datetime.now(UTC).timestamp()
    opened = {"2287b9a5": "2026-01-07T10:00:00Z", "e10b4ac6": "2026-03-05T09:00:00Z"}
    assert [(r[0][:8], bool(r[1])) for r in rows] == [
        ("0d4bcfe2", False), ("2287b9a5", True), ("e10b4ac6", True), ("ff3933e0", False)]
    for request_id, is_open, waiting in rows:
        if not is_open:
            assert waiting is None
            continue
        since = datetime.fromisoformat(opened[request_id[:8]]).timestamp()
        assert abs(int(waiting) - (now - since)) < 120


def test_the_http_api_is_tenant_scoped_with_the_same_shapes(store_url: str,
                                                           golden_path: Path) -> None:
    targets = Targets({"other": 86400}, {"globex": {"service": 7200}})
    with api(store_url, targets=targets) as client:
        assert client.post("acme", b"\n".join(golden_lines(golden_path, "acme"))).status_code == 200
        client.services.projections.project()
        acme = GOLDEN_RESPONSES[:2] + GOLDEN_RESPONSES[3:]
        assert without_version(client.get("acme", "/v1/responses").json()) == acme
        assert client.get("globex", "/v1/responses").json() == []
        assert client.get("acme", "/v1/response-times").json() == [
            r for r in GOLDEN_RESPONSE_TIMES if r["tenant"] == "acme"]
        assert ids(client.get("acme", "/v1/responses", open="true").json()) == ["2287b9a5"]
        assert ids(client.get("acme", "/v1/responses", overdue="true",
                              as_of="2026-01-08T10:00:01Z").json()) == ["2287b9a5"]
        assert client.get("acme", "/v1/responses", overdue="true",
                          as_of="2026-01-08T10:00:00Z").json() == []
        assert ids(client.get("acme", "/v1/responses", kind="complaint",
                              function="logistics").json()) == ["0d4bcfe2"]
        assert client.get("acme", "/v1/response-times", function="product").json() == [
            GOLDEN_RESPONSE_TIMES[2]]
    with api(store_url) as client:  # no targets: the same error as `mot query`, not []
        none = client.get("acme", "/v1/responses", overdue="true")
        assert (none.status_code, none.json()["code"]) == (409, "not_configured")
        assert none.json()["detail"] == NO_TARGETS.replace("--", "")
        assert client.get("acme", "/v1/responses", open="true").status_code == 200
    with api(store_url, targets=targets) as client:
        denied = client.get("acme", "/v1/responses", tenant="globex")
        assert denied.status_code == 403
        assert client.get("acme", "/v1/responses", kind="praise").status_code == 422


def test_a_store_made_before_responses_fills_them_when_opened(golden_store: str) -> None:
    with open_store(golden_store) as services, services.backend.write("test") as tx:
        tx.execute("DROP VIEW responses_view")
        tx.execute("DROP TABLE responses")
        tx.execute("UPDATE mot_schema SET version = 9")
    before = query(golden_store, "relationships", "--no-refresh")
    records = query(golden_store, "responses", "--no-refresh")
    assert without_version(records) == GOLDEN_RESPONSES
    assert {r["version"] for r in records} == {35}  # the position they were projected to
    assert query(golden_store, "relationships", "--no-refresh") == before
    # And the next page of moments keeps them, as if they had always been there.
    answer = {"tenant": "globex", "customer_id": "c1", "occurred_at": "2026-03-05T10:00:00Z",
              "channel": "email", "direction": "outbound", "kind": "answer",
              "function": "service", "source": {"system": "zendesk", "id": "z-101"}}
    mot(golden_store, "import", "-q", "-", input=json.dumps(answer))
    answered = query(golden_store, "responses", "--tenant", "globex")
    assert [(r["response_function"], r["response_seconds"]) for r in answered] == [
        ("service", 3600)]


def test_the_written_out_row_of_a_response_is_the_declared_one() -> None:
    """The stores write a request with `_response_row` (the rebuild's hot path); it makes what
    `row_maker(RESPONSES)` makes of the declaration, open or answered."""
    from mot.adapters.stores.projection_tables import _response_row
    from mot.projections.responses import Response
    from mot.projections.schema import RESPONSES, row_maker

    declared = row_maker(RESPONSES)
    t0 = 1_780_000_000_123_456
    for r in (Response("r1", "acme", "c1", "question", "email", "service", t0,
                       None, None, None, None),
              Response("r2", "acme", "c1", "complaint", "chat", "logistics", t0, "a1", "other",
                       t0 + 3_600_000_000, 3600),
              Response("r3", "globex", "c2", "feedback", "x", "other", t0, "a2", "service",
                       t0 - 1_500_000, -1)):
        assert _response_row(r, 42) == (*declared(r), 42)
    assert RESPONSES.columns[-1] == "version"
