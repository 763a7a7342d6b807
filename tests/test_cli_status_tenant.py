"""`mot status --tenant` (one tenant's quarantine, alerts and suspect persons; the ledger's
head, projections and lag said to be the store's) and "Did you mean" for every name a
command takes from a fixed set, in click's own words for a mistyped option."""

from __future__ import annotations

import json
from pathlib import Path

from alert_support import make_alert
from cli_support import mot
from conftest import SHARED

from mot.bootstrap import open_store

PERSONS = SHARED / "fixtures" / "persons.jsonl"


def test_status_of_one_tenant_counts_its_own_and_says_what_is_the_stores(
        store_url: str, tmp_path: Path) -> None:
    config = tmp_path / "mot.toml"
    config.write_text("[tenants.acme.persons]\nmax_ids = 3\n", encoding="utf-8")
    env = {"MOT_CONFIG": str(config)}
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"tenant": "globex", "customer_id": "c1"}\n'
                    b'{"tenant": "globex", "customer_id": "c2"}\n'
                    b'{"tenant": "acme", "customer_id": "c3"}\n'
                    b"not json at all\n")
    mot(store_url, "import", "-q", PERSONS, bad, env=env)
    mot(store_url, "project", "-q", env=env)
    services = open_store(store_url)
    try:
        services.alert_outbox.raise_alerts([make_alert(1, tenant="globex"),
                                            make_alert(2, tenant="globex"),
                                            make_alert(3, tenant="acme")])
    finally:
        services.close()

    whole = json.loads(mot(store_url, "status", "--format", "json", env=env).stdout)
    assert whole["quarantined"] == 4 and whole["alerts"]["raised"] == 3
    assert "tenant" not in whole and "store_wide" not in whole

    globex = json.loads(mot(store_url, "status", "--tenant", "globex", "--format", "json",
                            env=env).stdout)
    assert globex["tenant"] == "globex"
    assert globex["store_wide"] == ["ledger_head", "projection_position", "lag", "lag_seconds",
                                    "oldest_unprojected_at", "last_progress_at", "rebuild"]
    assert globex["ledger_head"] == whole["ledger_head"] and globex["lag"] == 0
    assert (globex["quarantined"], globex["quarantined_naming_no_tenant"]) == (2, 1)
    assert globex["alerts"] == {"raised": 2, "pending": 0, "delivered": 0, "failed": 0}
    assert globex["suspect_persons"] == []

    acme = json.loads(mot(store_url, "status", "--tenant", "acme", "--format", "json",
                          env=env).stdout)
    assert (acme["quarantined"], acme["quarantined_naming_no_tenant"]) == (1, 1)
    assert acme["alerts"]["raised"] == 1
    assert [(p["tenant"], p["customer_id"]) for p in acme["suspect_persons"]] == [
        ("acme", "hubspot:501")]

    text = mot(store_url, "status", "--tenant", "globex", env=env).stdout.splitlines()
    assert text[0] == ("tenant:       globex (the ledger head, projections and lag are the "
                       "store's, every tenant's)")
    assert text[3] == "quarantined:  2 of globex's, 1 naming no tenant (mot quarantine summary)"
    assert text[4] == "alerts:       2 raised, 0 to deliver, 0 failed (mot alerts list --failed)"
    assert not any(line.startswith("suspect:") for line in text)

    table = mot(store_url, "status", "--tenant", "acme", "--format", "csv", env=env).stdout
    header, row = table.splitlines()
    assert dict(zip(header.split(","), row.split(","), strict=True))["suspect_persons"] == "1"


def test_status_of_a_tenant_with_nothing_but_rejects_and_of_no_tenant(tmp_path: Path) -> None:
    """A tenant all of whose lines were rejected is one an operator asks about; a misspelt
    one is named with the tenants there are."""
    store = str(tmp_path / "mot.db")
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"tenant": "initech", "customer_id": "c1"}\n')
    mot(store, "import", "-q", PERSONS, bad)
    initech = json.loads(mot(store, "status", "--tenant", "initech", "--format", "json").stdout)
    assert initech["quarantined"] == 1 and initech["alerts"]["raised"] == 0
    wrong = mot(store, "status", "--tenant", "acm", ok=False)
    assert wrong.exit_code == 1
    assert wrong.stderr == "Error: no tenant 'acm' in this store (tenants: acme, globex)\n"


def test_a_mistyped_name_is_answered_with_the_nearest(tmp_path: Path) -> None:
    """Query names, export formats, alert rules, stages, vendors, --sort and --columns
    fields, and commands: each says the nearest choice, as click does for an option."""
    store = str(tmp_path / "mot.db")
    mot(store, "import", "-q", PERSONS)

    def error(*args: str) -> str:
        result = mot(store, *args, ok=False)
        assert result.exit_code == 2, result.output
        return result.stderr.splitlines()[-1]

    assert error("query", "relationship").endswith(
        "'response-times'. Did you mean 'relationships'?")
    assert error("query", "person").endswith("Did you mean 'persons'?")
    assert error("query", "relationships", "--stage", "Loyal").endswith(
        "Did you mean 'loyal'?")
    assert error("export", "--format", "parquett", "--out", str(tmp_path / "x")).endswith(
        "is not one of 'parquet', 'csv', 'jsonl'. Did you mean 'parquet'?")
    assert error("alerts", "list", "--rule", "detracter").endswith("Did you mean 'detractor'?")
    assert error("import", "--from", "hubspott", str(PERSONS)).endswith(
        "Did you mean 'hubspot'?")
    assert error("quer") == "Error: No such command 'quer'. Did you mean 'query'?"
    assert error("stat") == "Error: No such command 'stat'. Did you mean 'status'?"
    assert error("xyzzy") == "Error: No such command 'xyzzy'."
    # A subgroup's, by click itself: the same words.
    assert error("alerts", "lst") == "Error: No such command 'lst'. Did you mean 'list'?"
    assert error("query", "relationships", "--sort", "stag").startswith(
        "Error: cannot sort by 'stag' (did you mean 'stage'?); fields: tenant, customer_id")
    assert error("query", "relationships", "--columns", "custmer_id").startswith(
        "Error: --columns: no field 'custmer_id' (did you mean 'customer_id'?); fields: ")
