"""The persons fixture end to end (issue 15), on SQLite and on real PostgreSQL: `mot import`
(links and unlinks among the moments, in files like any message), `mot project`, `mot query
NAME --format json`; every section but the responses must equal persons.expected.json,
and the same after `mot replay` and after an import a few lines at a time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_support import mot
from conftest import SHARED
from persons_support import SECTIONS, assert_expected

FIXTURE = SHARED / "fixtures" / "persons.jsonl"
EXPECTED = SHARED / "fixtures" / "persons.expected.json"


def outputs(store: str) -> dict[str, list[dict[str, Any]]]:
    return {name: json.loads(mot(store, "query", name, "--format", "json").stdout)
            for name in SECTIONS}


def without_versions(got: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {name: sorted(json.dumps({k: v for k, v in r.items() if k not in ("version", "lapsed")},
                                    sort_keys=True) for r in records)
            for name, records in got.items()}


def test_the_persons_fixture_through_the_command_line(store_url: str) -> None:
    mot(store_url, "import", "-q", FIXTURE)
    mot(store_url, "project", "-q")
    first = outputs(store_url)
    assert_expected(first, EXPECTED)
    mot(store_url, "replay", "-q")
    assert without_versions(outputs(store_url)) == without_versions(first)
    shown = json.loads(mot(store_url, "identity", "show", "--tenant", "acme", "x:maria",
                           "--format", "json").stdout)
    assert shown["customer_id"] == "hubspot:501" and len(shown["links"]) == 3
    assert all(link["origin"].startswith(str(FIXTURE)) for link in shown["links"])
    text = mot(store_url, "identity", "show", "--tenant", "acme", "x:maria").stdout
    # The link history names the link taken back, with its time, reason and origin.
    [typo] = [line for line in text.splitlines() if "'typo'" in line]
    assert typo.split()[:4] == ["2026-04-02T09:00:00Z", "linked", "x:ben", "-"]
    assert str(FIXTURE) in typo and not typo.endswith("*")
    [fixed] = [line for line in text.splitlines() if "'typo fixed'" in line]
    assert fixed.split()[:2] == ["2026-04-03T09:00:00Z", "unlinked"] and fixed.endswith("*")


def test_the_persons_fixture_a_few_lines_at_a_time(store_url: str, tmp_path: Path) -> None:
    lines = FIXTURE.read_bytes().splitlines(keepends=True)
    for start in range(0, len(lines), 4):
        part = tmp_path / f"part-{start}.jsonl"
        part.write_bytes(b"".join(lines[start:start + 4]))
        mot(store_url, "import", "-q", part)
        mot(store_url, "project", "-q")
    assert_expected(outputs(store_url), EXPECTED)


def test_merge_protection_limits_per_tenant_in_mot_toml(store_url: str, tmp_path: Path) -> None:
    """mot.toml's [persons] and a tenant's own [tenants.NAME.persons]: the persons fixture's
    four-id person is suspect where a tenant allows three ids, and says why."""
    config = tmp_path / "mot.toml"
    config.write_text('[persons]\nmax_email_links = 5\n\n'
                      '[tenants.acme.persons]\nmax_ids = 3\n', encoding="utf-8")
    env = {"MOT_CONFIG": str(config)}
    mot(store_url, "import", "-q", FIXTURE, env=env)
    mot(store_url, "project", "-q", env=env)
    suspects = json.loads(mot(store_url, "query", "persons", "--suspect", "--format", "json",
                              env=env).stdout)
    assert [(p["tenant"], p["customer_id"], p["ids"]) for p in suspects] == [
        ("acme", "hubspot:501", 4)]
    shown = json.loads(mot(store_url, "identity", "show", "--tenant", "acme", "x:maria",
                           "--format", "json", env=env).stdout)
    assert shown["suspect"] and shown["suspect_because"] == ["4 ids (more than 3)"]
    status = mot(store_url, "status", env=env).stdout
    assert "acme/hubspot:501: 4 ids (more than 3)" in status
    # Without the file: the defaults (50 ids), after a replay folds the persons again.
    missing = mot(store_url, "replay", "-q", env={"MOT_CONFIG": str(tmp_path / "none.toml")},
                  ok=False)
    assert missing.exit_code != 0 and "none.toml: cannot read" in missing.output
    mot(store_url, "replay", "-q", env={"MOT_CONFIG": ""})
    assert json.loads(mot(store_url, "query", "persons", "--suspect", "--format", "json",
                          env={"MOT_CONFIG": ""}).stdout) == []


def test_a_bad_persons_limit_names_its_key() -> None:
    from mot.service.config import ConfigError
    from mot.service.persons import person_limits

    with pytest.raises(ConfigError, match=r"\[persons\]: unknown key 'max_id' \(did you mean 'max_ids'"):
        person_limits({"persons": {"max_id": 3}}, "mot.toml")
    with pytest.raises(ConfigError, match=r"\[tenants.acme.persons\] max_email_links: 0 is no limit"):
        person_limits({"tenants": {"acme": {"persons": {"max_email_links": 0}}}}, "mot.toml")
    limits = person_limits({"persons": {"max_ids": 20},
                            "tenants": {"acme": {"persons": {"max_email_links": 3}}}})
    assert (limits.of("acme"), limits.of("globex")) == ((20, 3), (20, 10))


def test_identity_show_fits_the_terminal(store_url: str) -> None:
    """At COLUMNS=80 each line of a link's history ran to 130 characters, which the terminal
    broke mid-word; the lines are broken between words to fit, each continuation indented
    deeper, and no word is lost. Piped without $COLUMNS, a line stays whole."""
    mot(store_url, "import", "-q", FIXTURE)
    args = ("identity", "show", "--tenant", "acme", "x:maria")
    whole = mot(store_url, *args, env={"COLUMNS": ""}).stdout.splitlines()
    fitted = mot(store_url, *args, env={"COLUMNS": "80"}).stdout.splitlines()
    assert max(map(len, whole)) > 80
    assert max(map(len, fitted)) <= 80, fitted
    assert " ".join(fitted).split() == " ".join(whole).split()
    assert len(fitted) > len(whole)
