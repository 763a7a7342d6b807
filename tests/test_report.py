"""`mot report`: every number on the page is one `mot query` prints, and the page loads in
a real headless browser (Debian's chromium) with no console error, no fetch, every chart.

The browser is installed by `chromium_bin` when missing (`apt-get install -y chromium`;
CI runs as root). The page carries a Content-Security-Policy that forbids every fetch,
so anything it tried to load would be refused and reported on the console: a clean
console also proves the page needs no network.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter, defaultdict
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from cli_support import mot, query
from process_support import run

from mot.service.report import CHARTS, TOP, week_of

CHART_KINDS = [kind for kind, _ in CHARTS]






class Page(HTMLParser):
    """The figures of a report page: per tenant, per chart, its values, reading and tables."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tenants: dict[str, dict[str, dict[str, Any]]] = {}
        self.tenant = ""
        self.figure: dict[str, Any] | None = None
        self.row: dict[str, Any] | None = None
        self.in_caption = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "section" and "data-tenant" in a:
            self.tenant = a["data-tenant"]
            self.tenants[self.tenant] = {}
        elif tag == "figure":
            self.figure = {"values": json.loads(a["data-values"]), "reading": "", "svg": 0,
                           "rows": {}, "query": None}
            self.tenants[self.tenant][a["data-chart"]] = self.figure
        elif self.figure is not None:
            if tag == "figcaption":
                self.in_caption = True
            elif tag == "svg":
                self.figure["svg"] += 1
            elif tag == "table":
                self.figure["query"] = a["data-query"]
            elif tag == "tr" and "data-key" in a:
                self.row = self.figure["rows"][tuple(json.loads(a["data-key"]))] = {}
            elif tag == "td" and self.row is not None:
                self.row[a["data-field"]] = json.loads(a["data-value"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "figcaption":
            self.in_caption = False
        elif tag == "figure":
            self.figure = None
        elif tag == "tr":
            self.row = None

    def handle_data(self, data: str) -> None:
        if self.in_caption and self.figure is not None:
            self.figure["reading"] += data


def week(stamp: str) -> str:
    when = datetime.fromisoformat(stamp).astimezone(UTC)
    return week_of((when - datetime(1970, 1, 1, tzinfo=UTC)).days)


def check_numbers(page: Page, store: str, *window: str) -> None:
    """Each chart's numbers and each table cell against `mot query` of that tenant."""
    for tenant, figures in page.tenants.items():
        assert sorted(figures) == sorted(CHART_KINDS)
        for kind, figure in figures.items():
            assert figure["svg"] >= 1, kind
            assert figure["reading"].strip().endswith("."), kind
        t = ("--tenant", tenant)
        rels = query(store, "relationships", *t)
        assert {s: n for s, n in figures["funnel"]["values"].items() if n} == dict(
            Counter(r["stage"] for r in rels))
        moved: dict[str, Counter[str]] = defaultdict(Counter)
        for tr in query(store, "transitions", *t, *window):
            moved[week(tr["occurred_at"])][tr["to"]] += 1
        assert figures["movement"]["values"] == {w: dict(c) for w, c in moved.items()}
        recips = query(store, "reciprocity", *t)
        assert {s: n for s, n in figures["reciprocity"]["values"].items() if n} == dict(
            Counter(r["status"] for r in recips))
        stop = {(r["tenant"], r["customer_id"]): r for r in recips if r["status"] == "stop_asking"}
        rows = figures["stop-asking"]["rows"]
        # The first TOP by unanswered asks, then balance and id (read in growing parts).
        first = sorted(stop.values(), key=lambda r: (-r["unanswered_asks"], r["balance"],
                                                     r["customer_id"]))[:TOP]
        assert list(rows) == [(r["tenant"], r["customer_id"]) for r in first]
        for key, row in rows.items():
            assert row == {f: stop[key][f] for f in row}
        assert figures["stop-asking"]["values"] == {k[1]: r["unanswered_asks"] for k, r in
                                                    rows.items()}
        amps = query(store, "amplifications", *t, *window)
        largest = sorted(amps, key=lambda a: -a["cascade_reach"])[:TOP]
        assert list(figures["cascades"]["values"].values()) == [a["cascade_reach"] for a in largest]
        by_id = {a["amplification_id"]: a for a in amps}
        for (amplification_id,), row in figures["cascades"]["rows"].items():
            assert row == {f: by_id[amplification_id][f] for f in row}
            assert {"trigger_function", "trigger_moment_id", "occurred_at"} <= set(row)
        delays = sorted(a["delay_seconds"] for a in amps if a["delay_seconds"] is not None)
        bins = [0] * 12
        for d in delays:
            bins[min(max(d, 0) // (6 * 3600), 11)] += 1
        assert figures["delay"]["values"] == {
            "posts": len(delays), "six_hour_bins": bins,
            "median": delays[(len(delays) - 1) // 2] if delays else None,
            "within_day": sum(d <= 86_400 for d in delays),
            "unprompted": sum(a["delay_seconds"] is None for a in amps)}
        teams = {t_["function"]: t_ for t_ in query(store, "teams", *t)}
        assert figures["polarity"]["values"] == {
            f: {"positive": r["positive"], "negative": r["negative"]} for f, r in teams.items()}
        assert figures["scoreboard"]["values"] == {
            f: {"given": r["given"], "asked": r["asked"]} for f, r in teams.items()}
        for (_, function), row in figures["scoreboard"]["rows"].items():
            assert row == {f: teams[function][f] for f in row}
        times = {r["function"]: r for r in query(store, "response-times", *t)}
        assert figures["response-times"]["values"] == {
            f: {"p50": r["response_p50_seconds"], "p90": r["response_p90_seconds"],
                "open": r["open"]} for f, r in times.items()}
        for (_, function), row in figures["response-times"]["rows"].items():
            assert row == {f: times[function][f] for f in row}
        weekly = figures["listening"]["values"]
        for numbers in weekly.values():
            total = numbers["listening"] + numbers["other"]
            assert numbers["share"] == (numbers["listening"] / total if total else None)
        if not window:  # all time: the weeks add up to the listening projection
            overall = query(store, "listening", *t)[0]
            assert sum(n["listening"] for n in weekly.values()) == overall["listening"]
            assert sum(n["other"] for n in weekly.values()) == overall["other"]


def test_every_number_on_the_report_is_what_mot_query_says(
    store_url: str, golden_path: Path, tmp_path: Path
) -> None:
    mot(store_url, "import", "-q", golden_path)
    out = tmp_path / "all.html"
    assert "wrote" in mot(store_url, "report", "--out", out).stdout
    page = Page(out.read_text(encoding="utf-8"))
    assert sorted(page.tenants) == ["acme", "globex"]
    check_numbers(page, store_url)
    acme = Page(mot(store_url, "report", "--tenant", "acme", "--out", "-").stdout)
    assert list(acme.tenants) == ["acme"]
    window = ("--since", "2026-01-21T00:00:00Z", "--until", "2026-02-01T00:00:00Z")
    windowed = Page(mot(store_url, "report", "--out", "-", *window).stdout)
    check_numbers(windowed, store_url, *window)
    missing = mot(store_url, "report", "--tenant", "nobody", "--out", "-", ok=False)
    assert missing.exit_code == 1
    assert "no tenant 'nobody' in this store (tenants: acme, globex)" in missing.output


def test_readings_say_what_the_data_shows(tmp_path: Path, golden_path: Path) -> None:
    store = str(tmp_path / "mot.db")
    mot(store, "import", "-q", golden_path)
    page = Page(mot(store, "report", "--tenant", "acme", "--out", "-").stdout)
    acme = page.tenants["acme"]
    rels = query(store, "relationships", "--tenant", "acme")
    detractors = sum(r["stage"] == "detractor" for r in rels)
    assert f"Of {len(rels)} customers" in acme["funnel"]["reading"]
    assert f"{detractors} (" in acme["funnel"]["reading"]
    biggest = query(store, "amplifications", "--tenant", "acme")[0]
    assert f"{biggest['customer_id']}'s {biggest['polarity']}" in acme["cascades"]["reading"]
    assert f"reached {biggest['cascade_reach']:,}" in acme["cascades"]["reading"]
    teams = query(store, "teams", "--tenant", "acme")
    negative = sum(t["negative"] for t in teams)
    if negative:
        worst = max(teams, key=lambda t: (t["negative"], -t["positive"]))
        assert acme["polarity"]["reading"].startswith(
            f"{worst['function']} triggered {worst['negative']} of the {negative} negative post")


def test_an_empty_store_reports_how_to_start(tmp_path: Path) -> None:
    nothing = tmp_path / "nothing.jsonl"
    nothing.write_bytes(b"")
    mot(str(tmp_path / "empty.db"), "import", "-q", nothing)  # report only reads: create it
    text = mot(str(tmp_path / "empty.db"), "report", "--out", "-").stdout
    assert "No customers yet" in text and "mot import" in text


@pytest.fixture(scope="session")
def chromium_bin() -> str:
    """Debian's chromium, installed when missing (CI machines start without it)."""
    found = shutil.which("chromium")
    if found is None:
        install = ["apt-get", "install", "-y", "-q", "chromium"]
        if run(install, exits=None, timeout=900).returncode != 0:
            run(["apt-get", "update", "-q"], timeout=900)
            run(install, timeout=900)
        found = shutil.which("chromium")
    assert found, "chromium could not be installed"
    return found


BROWSER_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                 "--no-first-run", "--disable-extensions", "--enable-logging=stderr", "--v=0",
                 "--proxy-server=127.0.0.1:9")  # a fetch that slipped past the CSP fails too


def browse(chromium: str, page: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run([chromium, *BROWSER_FLAGS, *extra, page.as_uri()], text=True, timeout=120)


def console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def test_the_report_loads_in_a_real_browser_with_no_console_error_and_every_chart(
    chromium_bin: str, tmp_path: Path, golden_path: Path
) -> None:
    store = str(tmp_path / "mot.db")
    mot(store, "import", "-q", golden_path)
    out = tmp_path / "report.html"
    mot(store, "report", "--out", out)
    loaded = browse(chromium_bin, out, "--dump-dom")
    assert console(loaded.stderr) == []
    dom = Page(loaded.stdout)  # the DOM as the browser built it
    assert sorted(dom.tenants) == ["acme", "globex"]
    for figures in dom.tenants.values():
        assert sorted(figures) == sorted(CHART_KINDS)
        assert all(f["svg"] >= 1 and f["reading"] for f in figures.values())
    shot = tmp_path / "report.png"
    browse(chromium_bin, out, f"--screenshot={shot}", "--window-size=1280,2400")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    # The check is real: a page that fetches, or whose script fails, shows on the console.
    bad = tmp_path / "bad.html"
    page = out.read_text(encoding="utf-8")
    bad.write_text(page.replace("<footer>", '<img src="http://example.com/x.png"><footer>'),
                   encoding="utf-8")
    assert any("example.com" in line for line in console(browse(chromium_bin, bad,
                                                                "--dump-dom").stderr))
