"""bench/run.py's scaling verdicts: which failing verdict is explained, and when the load
average is named as a caveat."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

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
