"""Terminal tables like psql's: they fit the terminal, say what they hid, and stay exact
in json/jsonl/csv; --columns, -x, and a default order per projection."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import cli_support
import pytest
from click.testing import Result

from mot.cli.tables import duration, fit

NAMES = ("relationships", "reciprocity", "transitions", "amplifications", "teams", "listening")


def mot(store: str, *args: str | Path, columns: int | None = None, ok: bool = True) -> Result:
    """`mot` with a terminal `columns` wide (None: no width, as when piped)."""
    return cli_support.mot(store, *args, ok=ok, env={"COLUMNS": str(columns or "")})


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, golden_path: Path) -> str:
    path = str(tmp_path_factory.mktemp("tables") / "mot.db")
    mot(path, "import", "-q", golden_path)
    mot(path, "project")
    return path


records = cli_support.query


@pytest.mark.parametrize("name", NAMES)
def test_every_table_fits_80_columns_and_names_what_it_hid(store: str, name: str) -> None:
    full = records(store, name)
    lines = mot(store, "query", name, "--format", "table", columns=80).stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, name
    header = lines[0].split()
    footer = " ".join(lines[2 + len(full):])
    assert footer.startswith(f"({len(full)} rows)")
    hidden = [f for f in full[0] if f not in header]
    if hidden:  # nothing dropped silently: each hidden field is named, and how to see it
        assert f"{len(hidden)} column" in footer and "-x" in footer and "--columns" in footer
        for field in hidden:
            assert field in footer
    else:
        assert "hidden" not in footer
    assert "tenant" in header
    # Unlimited (piped with no $COLUMNS): every field shown.
    wide = mot(store, "query", name, "--format", "table").stdout.splitlines()
    assert wide[0].split() == list(full[0])


def test_long_cells_are_cut_with_an_ellipsis_and_key_columns_stay() -> None:
    rows = [{"tenant": "acme", "customer_id": "c1", "trigger_moment_id": "x" * 36,
             "polarity": "negative", "note": "a long free text " * 5}]
    text = fit(rows, width=60)
    assert max(len(line) for line in text.splitlines()) <= 60
    assert "…" in text and "acme" in text and "negative" in text
    assert "x" * 36 in fit(rows, width=None).splitlines()[2]


def test_human_units_in_tables_only(store: str) -> None:
    amps = records(store, "amplifications")
    triggered = next(a for a in amps if a["delay_seconds"])
    table = mot(store, "query", "amplifications", "--format", "table", "--columns",
                "amplification_id,delay_seconds,cascade_reach").stdout
    assert duration(triggered["delay_seconds"]) in table
    assert str(triggered["delay_seconds"]) not in table.split()
    listening = records(store, "listening")
    share = listening[0]["listening_share"]
    assert f"{share:.1%}" in mot(store, "query", "listening", "--format", "table").stdout
    text = mot(store, "query", "listening", "--format", "csv").stdout
    assert float(next(csv.DictReader(io.StringIO(text)))["listening_share"]) == share
    assert duration(45) == "45s" and duration(3725) == "1h 2m" and duration(-7200) == "-2h 0m"
    assert duration(200_000) == "2d 7h"


def test_columns_choose_and_order_fields_in_every_format(store: str) -> None:
    chosen = records(store, "relationships", "--columns", "customer_id,stage,exchanges")
    assert chosen and all(list(r) == ["customer_id", "stage", "exchanges"] for r in chosen)
    text = mot(store, "query", "relationships", "--format", "csv", "--columns",
               "stage,customer_id").stdout
    assert text.splitlines()[0] == "stage,customer_id"
    table = mot(store, "query", "relationships", "--format", "table", "--columns",
                "customer_id,stage").stdout.splitlines()
    assert table[0].split() == ["customer_id", "stage"]
    wrong = mot(store, "query", "relationships", "--columns", "customer_id,stag", ok=False)
    assert wrong.exit_code == 2 and "no field 'stag'" in wrong.output and "stage" in wrong.output


def test_expanded_shows_every_field_of_each_record_in_full(store: str) -> None:
    amps = records(store, "amplifications")
    text = mot(store, "query", "amplifications", "-x", "--format", "table",
               columns=80).stdout
    blocks = text.split("-[ RECORD ")[1:]
    assert len(blocks) == len(amps)
    first = dict(line.split(" | ", 1) if " | " in line else (line.rstrip(" |"), "")
                 for line in blocks[0].splitlines()[1:])
    assert {k.strip() for k in first} == set(amps[0])
    assert first["amplification_id".ljust(17)] == amps[0]["amplification_id"]
    assert first["occurred_at".ljust(17)] == amps[0]["occurred_at"]


def test_default_order_per_projection(store: str) -> None:
    amps = records(store, "amplifications")
    assert [a["cascade_reach"] for a in amps] == sorted((a["cascade_reach"] for a in amps),
                                                        reverse=True)
    rels = records(store, "relationships")
    assert [r["last_moment_at"] for r in rels] == sorted((r["last_moment_at"] for r in rels),
                                                         reverse=True)
    recips = records(store, "reciprocity")
    assert recips[0]["unanswered_asks"] == max(r["unanswered_asks"] for r in recips)
    # --sort still chooses.
    by_id = records(store, "amplifications", "--sort", "+amplification_id")
    assert [a["amplification_id"] for a in by_id] == sorted(a["amplification_id"] for a in amps)
