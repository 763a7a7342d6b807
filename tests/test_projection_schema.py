"""Each projection's record is declared once (mot.projections.schema): every output follows it.

`mot query` live and `--as-of`, in JSON and CSV, the HTTP response models, the
changelog's records and the stored tables all take their fields and their order
from the declaration.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mot.adapters.http.models import RECORD_LISTS
from mot.adapters.stores.changelog import PUBLISHED
from mot.adapters.stores.projection_tables import column_names
from mot.bootstrap import open_store
from mot.cli.main import cli
from mot.projections.schema import PROJECTIONS

AS_OF = "2030-01-01T00:00:00Z"


@pytest.fixture(scope="module")
def golden_store(tmp_path_factory: pytest.TempPathFactory, golden_path: Path) -> str:
    store = str(tmp_path_factory.mktemp("schema") / "mot.db")
    result = CliRunner().invoke(cli, ["--store", store, "import", "-q", str(golden_path)])
    assert result.exit_code == 0, result.output
    return store


def header(store: str, name: str, fmt: str, *extra: str) -> list[str]:
    result = CliRunner().invoke(cli, ["--store", store, "query", name, "--format", fmt, *extra])
    assert result.exit_code == 0, result.output
    if fmt == "csv":
        return next(csv.reader(io.StringIO(result.stdout)))
    records = json.loads(result.stdout)
    assert records, name
    assert all(list(r) == list(records[0]) for r in records)
    return list(records[0])


@pytest.mark.parametrize("name", list(PROJECTIONS))
@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_live_and_as_of_answers_have_the_declared_columns_in_order(
    golden_store: str, name: str, fmt: str
) -> None:
    declared = list(PROJECTIONS[name].output_names)
    assert header(golden_store, name, fmt) == declared
    assert header(golden_store, name, fmt, "--as-of", AS_OF) == declared


def test_transitions_and_amplifications_keep_their_order_with_as_of(golden_store: str) -> None:
    """Issue 14: `--as-of` moved `from`/`to` and `trigger_actor` about."""
    assert header(golden_store, "transitions", "csv", "--as-of", AS_OF) == [
        "tenant", "customer_id", "from", "to", "occurred_at", "moment_id", "version"]
    assert header(golden_store, "amplifications", "json", "--as-of", AS_OF)[6:11] == [
        "trigger_moment_id", "trigger_function", "trigger_channel", "trigger_actor",
        "delay_seconds"]


@pytest.mark.parametrize("name", list(PROJECTIONS))
def test_the_http_models_are_the_declared_records(name: str) -> None:
    model = RECORD_LISTS[name].__args__[0]
    names = [f.alias or n for n, f in model.model_fields.items()]
    assert names == list(PROJECTIONS[name].output_names)


def test_the_changelog_publishes_the_shown_stored_fields() -> None:
    relationships = [f.name for f in PUBLISHED["relationships"].stored if f.shown != "stored"]
    assert "lapsed" not in relationships and "last_moment_us" not in relationships
    assert relationships[-1] == "version"


def test_a_new_store_has_each_declared_table_and_column(store_url: str) -> None:
    with open_store(store_url) as services, services.backend.read() as tx:
        for name, projection in PROJECTIONS.items():
            assert column_names(tx, name) == list(projection.columns), name


def test_the_per_tenant_sums_read_back_the_declared_counters_in_their_values_order() -> None:
    """The teams and listening rows are read back as `TeamRow` and `ListeningRow` by
    position: the counters the declarations give are the values' fields after the key."""
    from dataclasses import fields

    from mot.adapters.stores.projection_tables import _LISTENING_SUMS, _TEAM_SUMS
    from mot.projections.teams import ListeningRow, TeamRow

    assert _TEAM_SUMS.split(", ") == [f.name for f in fields(TeamRow)][2:] == [
        "moments", "given", "asked", "amplifications", "positive", "negative", "cascade_reach"]
    assert _LISTENING_SUMS.split(", ") == [f.name for f in fields(ListeningRow)][1:] == [
        "moments", "listening", "other"]


def test_an_erasure_reaches_every_projection_whose_rows_belong_to_a_customer() -> None:
    """The erasure's tables come from the declarations (SPEC §6): a projection with a
    `customer_id` loses a person's rows, or keeps them under the erasure's pseudo id where a
    per-tenant sum is summed from it; a new projection cannot be left out."""
    from mot.adapters.stores.erasure import PER_CUSTOMER, RE_OWNED
    from mot.projections.schema import SUMMARIES

    assert PER_CUSTOMER == ("relationships", "reciprocity", "transitions", "amplifications",
                            "persons")
    assert RE_OWNED == ("responses",)
    assert {*PER_CUSTOMER, *RE_OWNED} == {name for name, p in PROJECTIONS.items()
                                          if "customer_id" in p.columns}
    assert [name for name, p in {**PROJECTIONS, **{n: r for n, (r, _) in SUMMARIES.items()}
                                 }.items() if not p.per_customer] == [
        "teams", "listening", "response-times"]
