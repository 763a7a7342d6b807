"""The README and docs/ as a newcomer uses them: the two commands first, links that lead
somewhere, examples that run, and figures that say how to measure them again."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from cli_support import mot

from mot.domain.messages import RecordMoment, parse_message

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def anchors(text: str) -> set[str]:
    """GitHub's anchors for a page's headings."""
    found = set()
    for heading in re.findall(r"(?m)^#+ (.+)$", text):
        slug = re.sub(r"[^\w\- ]", "", heading.lower().replace("`", "")).replace(" ", "-")
        found.add(slug)
    return found


def test_the_readme_starts_with_the_two_commands_then_the_quickstart() -> None:
    text = README.read_text(encoding="utf-8")
    first = text.split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
    assert [line.split()[:2] for line in first] == [["make", "demo"], ["make", "test"]]
    headings = re.findall(r"(?m)^## (.+)$", text)
    assert headings[:2] == ["Quickstart", "Using it"]
    assert "`.venv/bin`" in text and "pipx install ." in text
    for reader in ("Integrators", "Engineers", "Analysts"):
        assert re.search(rf"(?m)^### {reader}: ", text), reader
    assert len(text.splitlines()) < 200  # the reference lives in docs/


def test_every_link_leads_somewhere() -> None:
    for page in [README, *DOCS]:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if target.startswith(("http://", "https://")):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            assert linked.exists(), f"{page.name}: {target}"
            if anchor and linked.suffix == ".md":
                assert anchor in anchors(linked.read_text(encoding="utf-8")), f"{page.name}: {target}"


def test_the_example_moments_are_valid(tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8") + (ROOT / "docs" / "importing.md").read_text()
    lines = re.findall(r"(?m)^(?:echo ')?(\{\"tenant\".*\})'?(?: \| mot import -)?$", text)
    assert len(lines) >= 3
    for line in lines:
        assert isinstance(parse_message(line, NOW), RecordMoment), line
    # The quickstart's CSV, as docs/importing.md shows it whole: everything recorded.
    csv = re.search(r"```csv\n(.*?)```", (ROOT / "docs" / "importing.md").read_text(), re.S)
    assert csv is not None
    path = tmp_path / "my.csv"
    path.write_text(csv.group(1))
    store = str(tmp_path / "mot.db")
    summary = json.loads(mot(store, "import", "--summary-json", "-q", path).stdout)
    assert (summary["read"], summary["recorded"], summary["quarantined"]) == (2, 2, 0)
    assert mot(store, "quarantine", "summary", "--format", "table").stdout == (
        "the quarantine is empty\n")
    piped = mot(store, "quarantine", "summary")  # JSON for a program, the words beside it
    assert (piped.stdout, piped.stderr) == ("[]\n", "the quarantine is empty\n")


def test_every_figure_names_its_machine_and_command() -> None:
    text = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    for section in re.split(r"(?m)^## ", text)[1:]:
        title = section.splitlines()[0]
        if not re.search(r"\d[\d,.]* (?:lines|events|msg|moments|changes|ms|s\b|MB)", section):
            continue
        assert re.search(r"make bench|bench/\w+\.py", section), title
        assert "2-CPU" in section or "machine" in section, title


def test_the_analysts_examples_find_something_in_the_demo_store(tmp_path: Path) -> None:
    """The Analysts' block named x:maria and c-1042, which no store a newcomer had held:
    'no customer 'x:maria' in this store'. Run on make demo's store (its sample), each line
    prints what it says (the link it imports makes x:maria one of the demo's persons)."""
    import shlex

    from mot.adapters.sources.sample import generate_lines

    store = str(tmp_path / "mot.db")
    demo = tmp_path / "moments.jsonl"
    with demo.open("wb") as out:
        out.writelines(generate_lines(6000, seed=7, tenants=["acme", "globex"], start=datetime(
            2026, 1, 1, tzinfo=UTC), customers=None, corrections=True, bad_lines=True))
    mot(store, "import", "-q", demo)
    text = README.read_text(encoding="utf-8").split("### Analysts", 1)[1]
    block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    assert block.startswith("export MOT_STORE=demo/mot.db ")
    ran = 0
    for line in block.splitlines()[1:]:
        stdin = None
        if line.startswith("echo '"):
            stdin, line = line[len("echo '"):].split("' | ", 1)
        words = shlex.split(line, comments=True)
        if ">" in words:
            words = words[: words.index(">")]
        if "--out" in words:
            words[words.index("--out") + 1] = str(tmp_path / f"out{ran}")
        assert words[0] == "mot", line
        if "--overdue" in words:  # said: it needs a target
            said = mot(store, *words[1:], ok=False)
            assert "[targets.first_response]" in said.output, said.output
            continue
        result = mot(store, *words[1:], input=stdin)
        assert result.stdout.strip() not in ("", "[]"), line
        assert "no customer" not in result.output, line
        ran += 1
    assert ran >= 13
    # The --help examples of mot show and mot identity, which named ids no store held
    # ('no moment from the source record 'zendesk:ZD-777'', 'no person ... has the id
    # 'zendesk:m1''), and a link with no --tenant ('no tenant 'default' in this store').
    from mot.cli.identity_commands import identity
    from mot.cli.ledger_commands import show

    helps = [show.help, *(c.help for c in identity.commands.values())]
    examples = [e.strip() for h in helps if h
                for e in h.split("Examples:", 1)[1].replace("\\\n", " ").strip().splitlines()]
    assert len(examples) == 7, examples
    for line in examples:
        words = shlex.split(line, comments=True)
        result = mot(store, *words[1:])
        assert result.stdout.strip(), line
