"""`GET /v1/report`: the `mot report` page of the token's tenant, and of no other."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from http_support import Api, api, golden_lines
from process_support import run
from test_report import Page, check_numbers

from mot.cli.main import cli


@pytest.fixture
def loaded(store_url: str, golden_path: Path) -> Iterator[Api]:
    with api(store_url) as client:
        for tenant, corrections in (("acme", True), ("globex", False)):
            answer = client.post(tenant, b"\n".join(golden_lines(golden_path, tenant,
                                                                 corrections=corrections)))
            assert answer.status_code == 200, answer.text
        client.services.projections.project()
        yield client


def test_the_report_of_the_tokens_tenant_is_the_commands_page(loaded: Api, store_url: str) -> None:
    answer = loaded.get("acme", "/v1/report")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    page = Page(answer.text)
    assert list(page.tenants) == ["acme"]  # globex's section is not there
    check_numbers(page, store_url)
    command = CliRunner().invoke(cli, ["--store", store_url, "report", "--tenant", "acme",
                                       "--out", "-", "--no-refresh"])
    assert Page(command.stdout).tenants == page.tenants
    window = {"since": "2026-01-21T00:00:00Z", "until": "2026-02-01T01:00:00+01:00"}
    windowed = loaded.get("acme", "/v1/report", **window)
    assert windowed.status_code == 200
    check_numbers(Page(windowed.text), store_url, "--since", "2026-01-21T00:00:00Z",
                  "--until", "2026-02-01T00:00:00Z")
    globex = Page(loaded.get("globex", "/v1/report").text)
    assert list(globex.tenants) == ["globex"]


def test_another_tenant_or_no_token_gets_no_report(loaded: Api) -> None:
    assert loaded.get("acme", "/v1/report", tenant="globex").status_code == 403
    assert loaded.client.get("/v1/report").status_code == 401
    assert loaded.get("acme_write", "/v1/report").status_code == 403  # no read scope
    assert loaded.get("acme", "/v1/report", since="yesterday").status_code == 422


def test_a_window_that_ends_before_it_starts_is_refused_not_answered_empty(
        loaded: Api, store_url: str) -> None:
    """--since after --until (swapped by hand) answered [] and wrote a report of empty weekly
    charts, which passed for a quiet period. The query, the report and their HTTP routes
    refuse it, naming both ends; a window of one instant still answers."""
    backwards = {"since": "2026-05-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}
    said = ("until (2026-01-01T00:00:00Z) is before since (2026-05-01T00:00:00Z): the window"
            " holds nothing; swap them")
    report = loaded.get("acme", "/v1/report", **backwards)
    assert report.status_code == 422 and report.json()["detail"] == said, report.text
    assert report.json()["field"] == "until"
    query = loaded.get("acme", "/v1/transitions", **backwards)
    assert query.status_code == 400 and said in query.json()["detail"], query.text
    for command in (["query", "transitions", "--tenant", "acme"],
                    ["report", "--tenant", "acme", "--out", "-"]):
        refused = CliRunner().invoke(cli, ["--store", store_url, *command, "--since",
                                           "2026-05-01T00:00:00Z", "--until", "2026-01-01"])
        assert refused.exit_code != 0 and refused.stdout == "", refused.output
        assert "is before since (2026-05-01T00:00:00Z): the window holds nothing" in refused.output
    same = {"since": "2026-01-21T00:00:00Z", "until": "2026-01-21T00:00:00Z"}
    assert loaded.get("acme", "/v1/transitions", **same).status_code == 200


def test_a_report_leaves_the_servers_locks_so_no_other_process_deletes_its_log(
        tmp_path: Path) -> None:
    """The report's Arrow reads of a SQLite file ran in mot serve's own process, with the ADBC
    driver's SQLite: closing its file there dropped every POSIX lock of the process on the
    store, the locks of the server's own connections too. The next command to close the
    store (any `mot query`) then found no one else and deleted the write-ahead log and its
    index under the server, whose later commits went to a deleted file: answered, seen by
    no other process. With the server's locks kept, the log stays and its writes are seen."""
    import json
    import signal
    import sys

    from http_support import free_port, serve

    from mot.bootstrap import open_store

    store = str(tmp_path / "mot.db")
    with open_store(store) as services:
        _, token = services.access.create("acme", "read,write")
    port = free_port()
    proc = serve(store, port)
    mot = [str(Path(sys.executable).parent / "mot"), "--store", store]
    headers = {"Authorization": f"Bearer {token}"}

    def post(source: str) -> None:
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/moments", headers=headers, content=(
            '{"customer_id": "c1", "occurred_at": "2026-03-01T09:00:00Z", "channel": "email",'
            ' "direction": "inbound", "kind": "question", "source": {"system": "s", "id": "'
            + source + '"}}'), timeout=30)
        assert answer.json()["counts"] == {"recorded": 1}, answer.text

    try:
        post("1")
        assert httpx.get(f"http://127.0.0.1:{port}/v1/report", headers=headers,
                         timeout=120).status_code == 200
        run([*mot, "query", "relationships", "--format", "json"])
        assert Path(store + "-wal").exists()
        post("2")
        shown = run([*mot, "show", "s:2", "--tenant", "acme", "--format", "json"], text=True)
        assert json.loads(shown.stdout), shown.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
