"""bench/run.py's scaling verdicts: which failing verdict is explained, and when the load
average is named as a caveat."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def run() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def row(n: int, rate: float, rss: float, load: float) -> dict[str, Any]:
    return {"bench": "b", "case": "mot thing, 2 ways", "store": "sqlite", "n": n, "rate": rate,
            "peak_rss_mb": rss, "loadavg": [load, load, load]}


NOTES = [{"case": "mot thing", "what": "rss", "text": "Memory is a page's."}]


def test_a_failing_rate_with_no_note_is_not_explained_even_on_a_busier_machine(run: ModuleType
                                                                                ) -> None:
    [verdict] = run.scaling([row(100_000, 100.0, 100, 1.2), row(1_000_000, 50.0, 100, 2.9)], cpus=2)
    assert (verdict["rate_ratio"], verdict["rate_ok"], verdict["rss_ok"]) == (0.5, False, True)
    assert verdict["why"].startswith("**not explained yet** (load average 2.9 at 1,000,000 "
                                     "against 1.2 at 100,000 on 2 CPUs")


def test_a_load_below_the_cpu_count_is_no_caveat(run: ModuleType) -> None:
    [verdict] = run.scaling([row(100_000, 100.0, 100, 1.0), row(1_000_000, 75.0, 100, 1.4)], cpus=2)
    assert verdict["why"] == "**not explained yet**"


def test_a_note_explains_the_verdict_it_names_only(run: ModuleType) -> None:
    [verdict] = run.scaling([row(100_000, 100.0, 100, 1.0), row(1_000_000, 100.0, 150, 1.0)],
                            cpus=2)
    assert (verdict["rate_ok"], verdict["rss_ok"]) == (True, False)
    assert run.explain(verdict, NOTES, None, None) == "Memory is a page's."
    assert run.explain({**verdict, "rss_ok": True, "rate_ok": False}, NOTES, None, None) \
        == "**not explained yet**"
    assert run.explain({**verdict, "rss_ok": True}, NOTES, None, None) == ""


def test_a_series_not_measured_at_the_largest_n_gets_no_verdict(run: ModuleType) -> None:
    """Judging 100,000 against 10,000 for a bench the 1,000,000 run left out would hold two
    small sizes to a target set for the large ones: it is named as unmeasured instead."""
    other = {**row(10_000, 50.0, 80, 1.0), "bench": "c", "case": "other"}
    rows = [row(100_000, 100.0, 100, 1.0), row(1_000_000, 90.0, 110, 1.0), other,
            {**other, "n": 100_000, "rate": 80.0}]
    [verdict] = run.scaling(rows, cpus=2)
    assert (verdict["bench"], verdict["n"], verdict["n_before"]) == ("b", 1_000_000, 100_000)
    assert run.unscaled(rows) == ["c"]


def test_earlier_runs_from_another_processor_are_left_out(run: ModuleType) -> None:
    """A BENCH_ONLY run on an AMD EPYC kept a report's Intel Xeon runs, 2.5 x faster, and
    compared their 1,000,000 rates with its own 100,000 ones."""
    runs = [{"bench": "a", "n": 1_000_000},                      # before runs named theirs
            {"bench": "b", "n": 1_000_000, "processor": "AMD EPYC"},
            {"bench": "c", "n": 100_000, "processor": "Intel Xeon"}]
    kept, dropped = run.same_machine(runs, "Intel Xeon", "AMD EPYC")
    assert [r["bench"] for r in kept] == ["b"]
    assert [(r["bench"], r["processor"]) for r in dropped] == [("a", "Intel Xeon"),
                                                              ("c", "Intel Xeon")]



def test_a_report_that_leaves_runs_out_describes_the_runs_it_keeps(
        run: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The header's load before and wall time were the whole earlier report's: those of the
    left-out runs stayed in the header of a report that no longer showed them."""
    here = run._cpu_model()
    runs = [{"bench": "a", "n": 100_000, "processor": "Intel Xeon", "seconds": 500.0,
             "loadavg_before": [0.1, 0.1, 0.1]},
            {"bench": "b", "n": 100_000, "processor": here, "seconds": 61.0,
             "loadavg_before": [1.5, 1.2, 1.0]},
            {"bench": "d", "n": 100_000, "processor": here, "seconds": 30.0,
             "loadavg_before": [2.0, 1.5, 1.1]}]
    (tmp_path / "results.json").write_bytes(orjson.dumps(
        {"runs": runs, "figures": {}, "seconds": 591.0, "loadavg_before": [0.1, 0.1, 0.1],
         "machine": {"processor": "Intel Xeon"}}))
    monkeypatch.setenv("BENCH_ONLY", "b")
    data = run.previous(tmp_path)
    assert [r["bench"] for r in data["runs"]] == ["b", "d"]
    assert (data["loadavg_before"], data["seconds"]) == ([1.5, 1.2, 1.0], 91.0)
    assert run.header_of([], (9.0, 8.0, 7.0)) == {"loadavg_before": [9.0, 8.0, 7.0],
                                                   "seconds": 0}
