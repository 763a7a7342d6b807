"""`mot verify` recomputes the projections from the ledger and names every stored row that differs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mot.bootstrap import open_store

MOT = Path(sys.executable).parent / "mot"


def mot(store: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MOT), "--store", store, *args], capture_output=True, text=True,
                          timeout=120, check=False)


def tamper(store: str, statement: str) -> None:
    services = open_store(store)
    try:
        with services.backend.write("projections") as tx:
            tx.execute(statement)
    finally:
        services.close()


def test_verify_passes_then_names_each_tampered_row(store_url: str, golden_path: Path) -> None:
    assert mot(store_url, "import", str(golden_path), "-q").returncode == 0
    clean = mot(store_url, "verify", "-q")
    assert clean.returncode == 0, clean.stderr
    assert "verified:" in clean.stdout and "35 events" in clean.stdout
    assert mot(store_url, "verify", "--tenant", "acme", "-q").returncode == 0

    before = json.loads(mot(store_url, "query", "relationships", "--tenant", "acme", "--customer", "c1",
                            "--format", "json").stdout)[0]
    tamper(store_url, "UPDATE relationships SET exchanges = exchanges + 5"
                      " WHERE tenant = 'acme' AND customer_id = 'c1'")
    tamper(store_url, "DELETE FROM teams WHERE tenant = 'acme' AND function = 'logistics'")
    found = mot(store_url, "verify", "--no-refresh", "--format", "json", "-q")
    assert found.returncode == 1
    assert "2 difference(s)" in found.stderr
    assert sorted(json.loads(found.stdout), key=lambda d: d["projection"]) == [
        {"projection": "relationships", "key": "acme/c1", "field": "exchanges",
         "stored": before["exchanges"] + 5, "expected": before["exchanges"]},
        {"projection": "teams", "key": "acme/logistics", "field": "(row)", "stored": "absent",
         "expected": "present"},
    ]
    # Another tenant's check does not see acme's damage.
    assert mot(store_url, "verify", "--no-refresh", "--tenant", "globex", "-q").returncode == 0
