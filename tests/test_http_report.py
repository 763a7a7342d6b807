"""`GET /v1/report`: the `mot report` page of the token's tenant, and of no other."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from http_support import Api, api, golden_lines
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
