"""What a new user meets in their first hour (issue 14): exit codes, Ctrl-C, the quarantine
commands, plurals, consistent options and help.

Commands run through click's CliRunner, or as real processes where the point is the
process itself (a closed pipe, a signal).
"""

from __future__ import annotations

import itertools
import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import orjson
import pytest
from cli_support import default_sigint, mot, query
from click.testing import CliRunner
from process_support import run, timed_mot

from mot.adapters.sources.sample import generate_lines
from mot.bootstrap import open_store
from mot.cli.main import cli
from mot.cli.params import SECONDS
from mot.domain.identity import derived_moment_id

MID = "6f1c9e2a-3b4d-4c5e-8f70-123456789abc"


def process(store: str, *args: str, **options: Any) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "MOT_STORE"}
    return subprocess.Popen([sys.executable, "-m", "mot", "--store", store, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, **options)


def sample_store(store: str, tmp_path: Path, n: int) -> None:
    path = tmp_path / "sample.jsonl"
    with path.open("wb") as out:
        out.writelines(generate_lines(n, seed=11))
    mot(store, "import", "-q", path)


def moment(**fields: Any) -> dict[str, Any]:
    return {"tenant": "acme", "customer_id": "c1", "occurred_at": "2026-03-01T10:00:00Z",
            "channel": "email", "direction": "outbound", "kind": "answer",
            "source": {"system": "crm", "id": "1"}, **fields}


def lines_file(tmp_path: Path, *messages: Any) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"".join(
        (m if isinstance(m, bytes) else orjson.dumps(m)) + b"\n" for m in messages))
    return path


# -- exit codes ----------------------------------------------------------------------------------


def test_a_closed_pipe_ends_silently_with_status_0(tmp_path: Path) -> None:
    store = str(tmp_path / "mot.db")
    sample_store(store, tmp_path, 3000)
    # More than a pipe holds, so the writer meets the closed pipe mid-way (`| head -1`).
    proc = process(store, "query", "transitions", "--format", "csv")
    assert proc.stdout is not None and proc.stderr is not None
    header = proc.stdout.readline()
    proc.stdout.close()
    assert proc.wait(timeout=60) == 0
    assert proc.stderr.read() == b""
    assert header.startswith(b"tenant,customer_id,")
    # A reader that goes before anything is written: still silent, still 0.
    for fmt in ("json", "table", "jsonl"):
        proc = process(store, "query", "relationships", "--format", fmt)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        assert proc.wait(timeout=60) == 0, fmt
        assert proc.stderr.read() == b"", fmt


def test_quarantine_replay_of_an_unknown_id_fails_like_show(tmp_path: Path) -> None:
    store = str(tmp_path / "mot.db")
    mot(store, "import", "-q", lines_file(tmp_path, b"{not json", moment()))
    for command in ("show", "replay"):
        result = mot(store, "quarantine", command, "999", ok=False)
        assert result.exit_code == 1, command
        assert "no quarantined message 999" in result.stderr, command
    # One unknown id among known ones: nothing is replayed.
    result = mot(store, "quarantine", "replay", "1", "999", ok=False)
    assert result.exit_code == 1 and "no quarantined message 999" in result.stderr
    assert json.loads(mot(store, "quarantine", "list", "--format", "json").stdout)[0]["id"] == 1


def test_quarantine_list_that_matches_nothing_says_so_and_names_the_fields(
        tmp_path: Path) -> None:
    """A misspelt --field listed nothing and said nothing: the fields are what the senders
    wrote (free-form), so the answer names those the quarantine holds."""
    store = str(tmp_path / "mot.db")
    mot(store, "import", "-q", lines_file(tmp_path, moment()))
    result = mot(store, "quarantine", "list", "--field", "channel", "--format", "json")
    assert (result.stdout, result.stderr) == ("[]\n", "the quarantine is empty\n")
    mot(store, "import", "-q", lines_file(tmp_path, moment(channel="fax"),
                                          moment(sentiment=1.7), b"not json"))
    result = mot(store, "quarantine", "list", "--field", "nosuch", "--format", "json")
    assert json.loads(result.stdout) == []
    assert result.stderr == ("no quarantined message with field 'nosuch'; its fields: channel, "
                             "sentiment (mot quarantine summary counts them by field and "
                             "reason)\n")
    result = mot(store, "quarantine", "list", "--field", "channel", "--reason", "zz")
    assert "no quarantined message with field 'channel' and a reason containing 'zz'" in (
        result.stderr)
    listed = mot(store, "quarantine", "list", "--field", "channel", "--format", "json")
    assert [e["field"] for e in json.loads(listed.stdout)] == ["channel"]
    assert listed.stderr == ""


@pytest.mark.parametrize(("command", "answer"), [
    (("story",), "== acme: 1 customer — "), (("verify",), "verified: "),
    (("query", "relationships", "--format", "jsonl"), '{"tenant":"acme"'),
    (("query", "persons", "--format", "jsonl"), '{"tenant":"acme"'),
    (("report", "--out", "-"), "<!doctype html>"),
    (("export", "--format", "csv", "--out", "{out}"), "{out}"),
    (("export", "--format", "parquet", "--no-refresh", "--out", "{out}"), "{out}"),
])
def test_an_unknown_tenant_is_refused_naming_the_known_ones(
        store_url: str, tmp_path: Path, command: tuple[str, ...], answer: str) -> None:
    """A misspelt --tenant (a trailing space, say) is an error naming the tenants there are:
    mot verify compared nothing and printed "verified: 0 rows ...", exit 0, a check that
    passed for having checked nothing; mot query printed [], mot export wrote empty files."""
    out = tmp_path / "out"
    command = tuple(part.format(out=out) for part in command)
    mot(store_url, "import", "-q", lines_file(tmp_path, moment()))
    mot(store_url, "project")  # what --no-refresh reads
    for wrong in ("nosuch", "acme "):
        result = mot(store_url, *command, "--tenant", wrong, ok=False)
        assert result.exit_code == 1
        assert result.stderr == f"Error: no tenant {wrong!r} in this store (tenants: acme)\n"
        # no empty files left to pass for it, nor the folder the refused export made
        assert not out.exists()
    assert mot(store_url, *command, "--tenant", "acme").stdout.lower().startswith(
        answer.replace("{out}", str(out)))


def wait_for(proc: subprocess.Popen[bytes], text: bytes) -> None:
    """Read the process's standard error until `text` appears."""
    assert proc.stderr is not None
    seen = b""
    while text not in seen:
        line = proc.stderr.readline()
        assert line, f"{text!r} never came; stderr: {seen!r}"
        seen += line


@pytest.mark.parametrize("command", ["project", "replay"])
def test_ctrl_c_exits_130_and_says_what_was_committed(tmp_path: Path, command: str) -> None:
    store = str(tmp_path / "mot.db")
    # Over 20,000 events, so that a first `mot project` is a rebuild too.
    sample_store(store, tmp_path, 21_000)
    with open_store(store) as services:
        head = services.ledger_store.head()
        # Another process's rebuild holds the lock: the command waits, and is stopped there,
        # at a point the test knows, as a user's Ctrl-C would stop it.
        with services.projection_store.rebuild_lock():
            proc = process(store, command, start_new_session=True, preexec_fn=default_sigint)
            wait_for(proc, b"waiting for another process's rebuild to end")
            os.killpg(proc.pid, signal.SIGINT)
            _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.decode().splitlines()[-1] == (
        f"interrupted: projections are at ledger position 0 of {head:,}; "
        f"run `mot {command}` again to continue")
    assert b"Traceback" not in err and b"Aborted!" not in err


# -- the quarantine ------------------------------------------------------------------------------


def test_quarantine_replay_counts_each_message_once(tmp_path: Path) -> None:
    store = str(tmp_path / "mot.db")
    amend = {"type": "amend", "moment_id": MID, "set": {"sentiment": 0.5}, "reason": "rescored"}
    # The amendment waits for its moment; the moment itself has a bad sentiment.
    mot(store, "import", "-q", lines_file(tmp_path, amend,
                                          {**moment(sentiment=1.7), "moment_id": MID}))
    [_, invalid] = json.loads(mot(store, "quarantine", "list", "--format", "json").stdout)
    fixed = orjson.dumps({**moment(), "moment_id": MID})
    with open_store(store) as services:
        services.ledger_store.set_quarantined_payload(invalid["id"], fixed)
    # Two passes: the amendment is retried once its moment went in. Two messages, not three.
    out = mot(store, "quarantine", "replay").stdout
    assert out == ("replayed 2 messages: recorded 1, amended 1, retracted 0, duplicates 0, "
                   "still rejected 0; 0 messages in the quarantine\n")


def test_quarantine_fix_keeps_the_original_when_the_fix_is_invalid(tmp_path: Path) -> None:
    store = str(tmp_path / "mot.db")
    mot(store, "import", "-q", lines_file(tmp_path, moment(sentiment=1.7)))
    bad = orjson.dumps(moment(channel="emial", kind="answr"))
    result = mot(store, "quarantine", "fix", "1", "-", input=bad, ok=False)
    assert result.exit_code == 1
    assert "quarantined message 1 is unchanged" in result.stderr
    assert "channel:" in result.stderr and "; kind:" in result.stderr
    [entry] = json.loads(mot(store, "quarantine", "list", "--format", "json").stdout)
    with open_store(store) as services:
        assert services.ledger_store.quarantine(ids=[1])[0].message == orjson.dumps(
            moment(sentiment=1.7))
    assert entry["reason"] == "sentiment: expected a number less than or equal to 1, got 1.7"


def test_quarantine_fix_of_two_entries_to_the_same_content(store_url: str, tmp_path: Path) -> None:
    store = store_url
    first = {"type": "amend", "moment_id": MID, "set": {"sentiment": 5}, "reason": "a"}
    second = {"type": "amend", "moment_id": MID, "set": {"sentimnt": 0.5}, "reason": "a"}
    mot(store, "import", "-q", lines_file(tmp_path, first, second))
    corrected = orjson.dumps({"type": "amend", "moment_id": MID, "set": {"sentiment": 0.5},
                              "reason": "a"})
    # Valid now, but its moment is not recorded: it stays, corrected, for a later replay.
    one = mot(store, "quarantine", "fix", "1", "-", input=corrected, ok=False)
    assert one.exit_code == 1 and "stays in the quarantine for a later" in one.stderr
    # The second entry corrected to the same message is that message: merged, no raw
    # UNIQUE error.
    two = mot(store, "quarantine", "fix", "2", "-", input=corrected, ok=False)
    assert two.exit_code == 1
    assert "merged into quarantined message 1" in two.stderr
    assert "UNIQUE" not in two.stderr
    [entry] = json.loads(mot(store, "quarantine", "list", "--format", "json").stdout)
    assert (entry["id"], entry["repeats"], entry["field"]) == (1, 2, "moment_id")
    # Once the moment is recorded, the corrected amendment, which waits for it, goes in with
    # it (SPEC §2) and leaves the quarantine.
    out = mot(store, "import", lines_file(tmp_path, {**moment(), "moment_id": MID})).stdout
    assert "recorded 1" in out and "1 waiting correction applied" in out
    assert json.loads(mot(store, "quarantine", "list", "--format", "json").stdout) == []
    history = json.loads(mot(store, "show", MID, "--format", "json").stdout)
    assert [(r["event"], r.get("set")) for r in history] == [
        ("recorded", None), ("amended", {"sentiment": 0.5})]


def test_quarantine_summary_groups_by_field_and_reason(store_url: str, tmp_path: Path) -> None:
    store = store_url
    mot(store, "import", "-q", lines_file(
        tmp_path,
        moment(sentiment=1.7, source={"system": "crm", "id": "1"}),
        moment(sentiment=2.5, source={"system": "crm", "id": "2"}),
        moment(chanel="email", source={"system": "crm", "id": "3"}),
        b"{not json", b"   {also not json",
        {"type": "amend", "moment_id": MID, "set": {"sentiment": 0.5}, "reason": "a"},
    ))
    rows = json.loads(mot(store, "quarantine", "summary", "--format", "json").stdout)
    assert [(r["field"], r["messages"], r["example"]) for r in rows] == [
        ("sentiment", 2, 1), ("", 2, 4), ("chanel", 1, 3), ("moment_id", 1, 6)]
    # Two lines cut off at different places are one group.
    assert rows[1]["reason"] == "not valid JSON: expected a field name in double quotes"
    assert rows[0]["reason"] == "expected a number less than or equal to 1"
    assert rows[3]["reason"].startswith("no recorded moment <id> to be amended")
    table = mot(store, "quarantine", "summary", "--format", "table").stdout
    assert table.splitlines()[0].split() == ["field", "reason", "did_you_mean", "messages", "example"]
    assert table.splitlines()[-1] == "6 messages in the quarantine"


def test_a_query_for_an_unknown_customer_says_so_on_stderr(store_url: str, tmp_path: Path) -> None:
    """`mot query NAME --customer ID` with an id no person has: stdout stays the empty answer a
    program reads, stderr says there is no such customer there (and which tenant has it)."""
    mot(store_url, "import", "-q", lines_file(
        tmp_path, moment(), moment(tenant="beta", customer_id="b7", source={"system": "crm", "id": "2"})))
    for name in ("relationships", "reciprocity", "responses"):
        piped = mot(store_url, "query", name, "--customer", "nobody")
        assert (piped.stdout, piped.stderr) == ("[]\n", "no customer 'nobody' in this store\n")
        other = mot(store_url, "query", name, "--customer", "b7", "--tenant", "acme",
                    "--format", "csv")
        assert other.stderr == "no customer 'b7' in tenant 'acme'; tenant beta has it: --tenant beta\n"
        assert other.stdout.count("\n") == 1  # the header alone
    # A customer who is there, with no row that passes the filters: no such words.
    known = mot(store_url, "query", "relationships", "--customer", "c1", "--stage", "detractor")
    assert (known.stdout, known.stderr) == ("[]\n", "")
    assert len(json.loads(mot(store_url, "query", "relationships", "--customer", "c1").stdout)) == 1


def test_quarantine_summary_says_what_was_meant(store_url: str, tmp_path: Path) -> None:
    """README's third step: `mot quarantine summary` shows the "did you mean 'email'?" hint,
    with the values sent for it, most sent first; piped, it is JSON alone."""
    path = tmp_path / "my.csv"
    rows = [("c-1", "phone", "logistics"), ("c-2", "emial", "logistics"),
            ("c-3", "e-mail", "logistcs"), ("c-4", "emial", "logistics"), ("c-5", "fone", "hr")]
    path.write_text("tenant,customer_id,occurred_at,channel,direction,kind,function,source.system,"
                    "source.id\n" + "".join(
                        f"acme,{c},2026-06-02T08:00:00Z,{channel},inbound,complaint,{function},crm,{c}\n"
                        for c, channel, function in rows))
    mot(store_url, "import", "-q", path)
    piped = mot(store_url, "quarantine", "summary").stdout  # not a terminal: JSON
    summary = {r["field"]: (r["did_you_mean"], r["messages"]) for r in json.loads(piped)}
    assert summary == {"channel": ("'email' for 'emial', 'e-mail'; 'phone' for 'fone'", 4),
                       "function": ("'logistics' for 'logistcs'", 1)}
    table = mot(store_url, "quarantine", "summary", "--format", "table", env={"COLUMNS": "200"})
    assert "'email' for 'emial', 'e-mail'; 'phone' for 'fone'" in table.stdout


def test_quarantine_replay_and_drop_by_field_and_reason(store_url: str, tmp_path: Path) -> None:
    store = store_url
    mot(store, "import", "-q", lines_file(
        tmp_path,
        moment(sentiment=1.7, source={"system": "crm", "id": "1"}),
        moment(chanel="email", source={"system": "crm", "id": "3"}),
        b"{not json", b"{also not json",
    ))
    out = mot(store, "quarantine", "replay", "--field", "sentiment").stdout
    assert out.startswith("replayed 1 message: ")
    out = mot(store, "quarantine", "replay", "--reason", "NOT VALID json").stdout
    assert out.startswith("replayed 2 messages: ")
    assert mot(store, "quarantine", "replay", "--field", "nosuch").stdout == (
        "no quarantined message matches; nothing replayed\n")
    out = mot(store, "quarantine", "drop", "--reason", "not valid JSON").stdout
    assert out == "dropped 2 messages; 2 messages in the quarantine\n"
    listed = json.loads(mot(store, "quarantine", "list", "--field", "chanel",
                            "--format", "json").stdout)
    assert [e["id"] for e in listed] == [2]
    nothing = mot(store, "quarantine", "drop", ok=False)
    assert nothing.exit_code == 2 and "name the messages to drop" in nothing.stderr


def test_quarantine_replay_and_drop_that_match_nothing_say_why(tmp_path: Path) -> None:
    """`replay --field nosuch` said only 'nothing replayed', and `drop --field nosuch`
    'dropped 0 messages': now both say on stderr, as `list` does, what the filter named
    and the fields the quarantine holds (nothing is replayed nor dropped)."""
    store = str(tmp_path / "mot.db")
    mot(store, "import", "-q", lines_file(tmp_path, moment()))
    for command in ("replay", "drop"):
        result = mot(store, "quarantine", command, "--field", "channel")
        assert result.stderr == "the quarantine is empty\n", command
    mot(store, "import", "-q", lines_file(tmp_path, moment(channel="fax"),
                                          moment(sentiment=1.7)))
    why = ("no quarantined message with field 'nosuch'; its fields: channel, sentiment "
           "(mot quarantine summary counts them by field and reason)\n")
    replayed = mot(store, "quarantine", "replay", "--field", "nosuch")
    assert (replayed.stdout, replayed.stderr) == (
        "no quarantined message matches; nothing replayed\n", why)
    dropped = mot(store, "quarantine", "drop", "--field", "nosuch")
    assert (dropped.stdout, dropped.stderr) == (
        "dropped 0 messages; 2 messages in the quarantine\n", why)
    dropped = mot(store, "quarantine", "drop", "1", "--reason", "zz")
    assert dropped.stderr.startswith("no quarantined message with a reason containing 'zz'; ")
    dropped = mot(store, "quarantine", "drop", "--field", "channel")
    assert (dropped.stdout, dropped.stderr) == (
        "dropped 1 message; 1 message in the quarantine\n", "")


def test_a_line_with_three_errors_names_all_three(tmp_path: Path) -> None:
    store = str(tmp_path / "mot.db")
    mot(store, "import", "-q", lines_file(
        tmp_path, moment(channel="emial", direction="outbund", kind="answr")))
    shown = mot(store, "quarantine", "show", "1").stdout
    assert "field:      channel\n" in shown
    reason = next(line for line in shown.splitlines() if line.startswith("reason:"))
    assert "got 'emial' (did you mean 'email'?); direction: " in reason
    assert "got 'outbund' (did you mean 'outbound'?); kind: " in reason
    assert reason.endswith("got 'answr' (did you mean 'answer'?)")
    # The summary counts the message under each of its fields.
    rows = json.loads(mot(store, "quarantine", "summary", "--format", "json").stdout)
    assert [(r["field"], r["messages"]) for r in rows] == [
        ("channel", 1), ("direction", 1), ("kind", 1)]
    assert rows[1]["reason"] == "expected 'inbound', 'outbound' or 'public'"
    for field in ("channel", "direction", "kind"):
        listed = mot(store, "quarantine", "list", "--field", field, "--format", "json").stdout
        assert [e["id"] for e in json.loads(listed)] == [1], field


# -- words ---------------------------------------------------------------------------------------


def test_a_number_that_is_no_number_is_called_what_it_is(tmp_path: Path) -> None:
    """click's IntRange called itself an 'integer range': `--limit abc` said "'abc' is not a
    valid integer range." Every whole-number option and argument now says 'integer'."""
    store = str(tmp_path / "mot.db")
    for args, name in [(("query", "relationships", "--limit", "abc"), "'--limit'"),
                       (("import", "--batch-size", "x", "-"), "'--batch-size'"),
                       (("quarantine", "show", "abc"), "'ID'"),
                       (("sample", "many"), "'N'")]:
        result = mot(store, *args, ok=False)
        assert result.exit_code == 2
        assert result.stderr.splitlines()[-1] == (
            f"Error: Invalid value for {name}: {args[-2] if args[-1] == '-' else args[-1]!r} "
            "is not a valid integer."), result.stderr

    def ranges(command: click.Command, path: str) -> list[str]:
        found = [f"{path} {p.name}" for p in command.params
                 if isinstance(p.type, click.IntRange) and p.type.name != "integer"]
        if isinstance(command, click.Group):
            for name in command.list_commands(click.Context(command)):
                sub = command.get_command(click.Context(command), name)
                assert sub is not None
                found += ranges(sub, f"{path} {name}")
        return found

    assert ranges(cli, "mot") == []


def test_quarantine_show_escapes_a_raw_line_on_a_terminal_only(tmp_path: Path) -> None:
    """A rejected line's bytes are whoever sent them: on a terminal (a pty here) `mot
    quarantine show` escapes what the terminal would act on; piped, the bytes are exact."""
    import pty

    store = str(tmp_path / "mot.db")
    line = b'{"tenant": "acme\x1b]0;pwned\x07", "customer_id": 5, "x": "\xff"}'
    mot(store, "import", "-q", lines_file(tmp_path, line))
    piped = mot(store, "quarantine", "show", "1").stdout_bytes
    assert b"raw:\n" + line + b"\n" in piped
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "mot", "--store", store, "quarantine", "show",
                             "1"], stdout=follower, stderr=subprocess.PIPE)
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the pty's other end closed: the process is done writing
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    assert proc.wait(timeout=300) == 0, proc.stderr.read() if proc.stderr else ""
    assert b"\x1b" not in shown and b"\x07" not in shown
    assert b'{"tenant": "acme\\x1b]0;pwned\\x07", "customer_id": 5, "x": "\\xff"}' in shown


def test_show_and_quarantine_show_escape_what_a_sender_wrote_in_their_text_lines(
        tmp_path: Path) -> None:
    """`mot quarantine show` printed a rejected message's field (an unknown key, as sent)
    and reason raw, and `mot show` an amendment's reason: a sender's escape sequences
    cleared and retitled the operator's terminal. Those lines are for a person: what a
    terminal acts on is escaped, piped or not (the raw bytes stay exact when piped)."""
    store = str(tmp_path / "mot.db")
    evil = "\x1b]0;pwned\x07\x1b[2J"
    mot(store, "import", "-q", lines_file(
        tmp_path, moment(), {**moment(source={"system": "crm", "id": "2"}), f"note{evil}": 1},
        {"type": "amend", "tenant": "acme", "moment_id": derived_moment_id("acme", "crm", "1"),
         "set": {"kind": "help"}, "reason": f"why{evil}"}))
    shown = mot(store, "quarantine", "show", "1").stdout
    header = shown.split("raw:\n")[0]
    assert "\x1b" not in header and "\x07" not in header, header
    assert "field:      note\\x1b]0;pwned\\x07\\x1b[2J\n" in header
    assert "reason:     note\\x1b]0;pwned\\x07\\x1b[2J: unknown field" in header
    history = mot(store, "show", "crm:1", "--tenant", "acme").stdout
    assert "\x1b" not in history and "\x07" not in history, history
    assert "     reason: why\\x1b]0;pwned\\x07\\x1b[2J\n" in history


def test_erasures_list_takes_the_formats_every_listing_takes(store_url: str, tmp_path: Path) -> None:
    """docs/cli.md: commands that print records take --format table|json|jsonl|csv; `mot
    erasures list` printed JSON only ('No such option: --format')."""
    mot(store_url, "import", "-q", lines_file(tmp_path, moment()))
    mot(store_url, "erase", "--tenant", "acme", "--customer", "c1", "--reason", "GDPR 7")
    as_csv = mot(store_url, "erasures", "list", "--format", "csv").stdout.splitlines()
    assert as_csv[0].split(",")[:4] == ["erasure", "tenant", "erased_at", "reason"]
    assert as_csv[1].split(",")[:2] == ["1", "acme"] and len(as_csv) == 2
    table = mot(store_url, "erasures", "list", "--format", "table", env={"COLUMNS": "300"}).stdout
    assert table.split()[:2] == ["erasure", "tenant"] and "GDPR 7" in table
    piped = json.loads(mot(store_url, "erasures", "list").stdout)  # piped: JSON, as before
    assert [(r["erasure"], r["reason"]) for r in piped] == [(1, "GDPR 7")]


def test_an_empty_columns_is_refused_not_read_as_every_field(tmp_path: Path) -> None:
    store = str(tmp_path / "mot.db")
    mot(store, "import", "-q", lines_file(tmp_path, moment()))
    for given in ("", " , "):
        result = mot(store, "query", "relationships", "--columns", given, ok=False)
        assert result.exit_code == 2
        assert result.stderr.splitlines()[-1] == (
            "Error: --columns names no field: give them separated by commas, such as "
            "customer_id,stage")
    assert query(store, "relationships", "--columns", "stage") == [{"stage": "stranger"}]


def test_an_empty_out_is_refused_not_read_as_this_folder(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """`mot export --out "$DIR"` with DIR unset wrote (and overwrote) nine files in the current
    folder; `mot report --out ""` failed with '.: Is a directory'. Both are refused first."""
    store = str(tmp_path / "mot.db")
    mot(store, "import", "-q", lines_file(tmp_path, moment()))
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    for command in (("export", "--format", "csv"), ("report",)):
        result = mot(store, *command, "--out", "", ok=False)
        assert result.exit_code == 2, result.output
        assert result.stderr.endswith("Error: Invalid value for '--out': is empty (an unset "
                                      "variable?): name a path, '.' for this folder\n")
    assert list(here.iterdir()) == []
    assert mot(store, "export", "--format", "csv", "--out", ".", "-q").exit_code == 0
    assert "relationships.csv" in {p.name for p in here.iterdir()}


def test_what_a_terminal_would_act_on_is_shown_escaped(store_url: str, tmp_path: Path) -> None:
    """A tenant's data printed to an operator: an escape sequence (retitling the window,
    clearing the screen), a newline forging a table row, a right-to-left override are shown
    as their escapes in tables and the story; json keeps them exact."""
    hostile = {"tenant": "t\x1b]0;pwned\x07", "customer_id": "two\nacme  c9  promoter"}
    mot(store_url, "import", "-q", lines_file(
        tmp_path, moment(**hostile), moment(customer_id="ev\u202elin",
                                            source={"system": "crm", "id": "2"})))
    table = mot(store_url, "query", "relationships", "--format", "table").stdout
    story = mot(store_url, "story").stdout
    for shown in (table, story):
        assert "\x1b" not in shown and "\u202e" not in shown and "\x07" not in shown
        assert "t\\x1b]0;pwned\\x07" in shown
    assert "two\\nacme  c9  promoter" in table and "ev\\u202elin" in table
    assert len(table.splitlines()) == 2 + 2 + 1  # header, rule, two rows, the count
    exact = {(r["tenant"], r["customer_id"]) for r in json.loads(
        mot(store_url, "query", "relationships", "--format", "json").stdout)}
    assert exact == {(hostile["tenant"], hostile["customer_id"]), ("acme", "ev\u202elin")}


def test_counts_read_in_the_singular_and_plural(tmp_path: Path) -> None:
    store = str(tmp_path / "mot.db")
    mot(store, "import", "-q", lines_file(tmp_path, moment()))
    assert mot(store, "project").stdout == "applied 1 event; projections at 1 of 1\n"
    assert mot(store, "project").stdout == "applied 0 events; projections at 1 of 1\n"


def test_story_says_how_a_post_travelled(tmp_path: Path) -> None:
    store = str(tmp_path / "mot.db")
    post = moment(channel="twitter", direction="public", kind="post", reach=6561,
                  sentiment=0.8, source={"system": "x", "id": "p"})
    share = moment(channel="twitter", direction="public", kind="share", reach=10,
                   customer_id="c2", shares={"system": "x", "id": "p"},
                   source={"system": "x", "id": "s"})
    mot(store, "import", "-q", lines_file(tmp_path, post))
    assert ("   travelled far: positive post by c1 reached 6,561 without shares (unprompted)"
            in mot(store, "story").stdout.splitlines())
    mot(store, "import", "-q", lines_file(tmp_path, share))
    assert ("   travelled far: positive post by c1 reached 6,571 with 1 share (unprompted)"
            in mot(store, "story").stdout.splitlines())


# -- one vocabulary, validated choices, dates, examples --------------------------------------------


def all_commands() -> list[list[str]]:
    """Every command's path under `mot`, groups included."""

    found: list[list[str]] = []

    def walk(command: click.Command, path: list[str]) -> None:
        found.append(path)
        if isinstance(command, click.Group):
            ctx = click.Context(command, info_name=path[-1] if path else "mot")
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                walk(sub, [*path, name])

    walk(cli, [])
    return found


def command_at(path: list[str]) -> Any:
    """The command `mot PATH...`."""

    command = cli
    for name in path:
        assert isinstance(command, click.Group)
        found = command.get_command(click.Context(command), name)
        assert found is not None
        command = found
    return command


def test_every_help_page_has_an_example_and_fits_80_columns() -> None:
    commands = all_commands()
    assert ["sample"] in commands and ["quarantine", "summary"] in commands
    for path in commands:
        page = CliRunner().invoke(cli, [*path, "--help"], terminal_width=80)
        assert page.exit_code == 0, path
        assert "Example" in page.output, f"mot {' '.join(path)} --help has no example"
        # click wraps the prose; an example line (\b) and a choice's metavar are as written
        wide = [line for line in page.output.splitlines() if len(line) > 80]
        assert not wide, f"mot {' '.join(path)} --help: lines over 80 columns: {wide}"
        for line in page.output.splitlines():
            if line.strip().startswith("mot ") and "Usage" not in line:
                # an example names a real command
                words = line.split()
                assert words[1] in {p[0] for p in commands if p} or words[1].startswith("--"), line


SHELL_PUNCTUATION = frozenset({"|", ">", ">>", "<", ";", "&&", "||", "&"})


def examples(text: str) -> list[str]:
    """The `mot ...` lines of a help text's examples (an `Example: mot ...` line included)."""
    found: list[str] = []
    for line in text[text.find("Example"):].splitlines():
        line = line.strip().removeprefix("Examples:").removeprefix("Example:").strip()
        if found and found[-1].endswith("\\"):  # a command continued on the next line
            found[-1] = found[-1].removesuffix("\\") + line
        elif line.startswith("mot "):
            found.append(line)
    return found


def test_every_example_is_in_the_docstring_and_parses() -> None:
    """Help comes from the docstrings: each command's own text holds its example, and each
    example's command and options parse as `mot` would (only a file it names may be absent)."""
    parsed = 0
    for path in all_commands():
        command = command_at(path)
        lines = examples(command.help or "")
        assert lines, f"mot {' '.join(path)}: no `mot ...` example in its docstring"
        for line in lines:
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            tokens = list(lexer)  # a comment dropped; a pipe or a redirection ends the command
            words = list(itertools.takewhile(lambda t: t not in SHELL_PUNCTUATION, tokens))[1:]
            while words[:1] == ["--store"]:
                words = words[2:]
            ctx = click.Context(cli, info_name="mot")
            target: click.Command = cli
            while isinstance(target, click.Group) and words and not words[0].startswith("-"):
                sub = target.get_command(ctx, words[0])
                assert sub is not None, f"{line}: no command {words[0]!r}"
                ctx = click.Context(sub, info_name=words.pop(0), parent=ctx)
                target = sub
            try:
                target.make_context(ctx.info_name, words, parent=ctx.parent).close()
            except click.BadParameter as error:
                assert "does not exist" in error.message or "No such file" in error.message, (
                    f"{line}: {error.format_message()}")
            except click.ClickException as error:
                raise AssertionError(f"{line}: {error.format_message()}") from error
            parsed += 1
    assert parsed >= 90


def test_every_format_option_speaks_one_vocabulary() -> None:
    records = {"table", "json", "jsonl", "csv"}
    for path in all_commands():
        for param in command_at(path).params:
            if param.name != "fmt" or path == ["import"]:  # import's --format is its input's
                continue
            assert isinstance(param.type, click.Choice), path
            choices = set(param.type.choices)
            prose = choices - records
            # markdown: a story for people; parquet: export's files for analysts' tools.
            assert prose <= {"text", "markdown", "parquet"}, (path, prose)


def test_function_and_stage_are_validated_choices(tmp_path: Path) -> None:
    from mot.cli.projection_commands import FUNCTIONS
    from mot.domain.vocabulary import FUNCTIONS as VOCABULARY

    assert FUNCTIONS == VOCABULARY
    store = str(tmp_path / "mot.db")
    mot(store, "import", "-q", lines_file(tmp_path, moment(function="service")))
    wrong = mot(store, "query", "teams", "--function", "Service", ok=False)
    assert wrong.exit_code == 2
    assert "'Service' is not one of 'service', 'product'" in wrong.stderr
    teams = json.loads(mot(store, "query", "teams", "--function", "service").stdout)
    assert [t["function"] for t in teams] == ["service"]
    assert mot(store, "query", "relationships", "--stage", "Loyal", ok=False).exit_code == 2


def test_since_and_until_take_dates(tmp_path: Path) -> None:
    store = str(tmp_path / "mot.db")
    mot(store, "import", "-q", lines_file(tmp_path, *(
        moment(occurred_at=at, source={"system": "crm", "id": at})
        for at in ("2026-05-31T23:59:59Z", "2026-06-01T00:00:00Z", "2026-06-30T23:59:59.5Z",
                   "2026-07-01T00:00:00Z"))))

    def occurred(*args: str) -> list[str]:
        rows = json.loads(mot(store, "query", "transitions", *args, "--format", "json").stdout)
        return [r["occurred_at"] for r in rows]

    everything = occurred()
    assert occurred("--since", "2026-06-01", "--until", "2026-06-30") == [
        t for t in everything if "2026-06-01T00:00:00Z" <= t <= "2026-06-30T23:59:59.5Z"]
    assert occurred("--since", "2026-06-01", "--until", "2026-06-30") == occurred(
        "--since", "2026-06-01T00:00:00Z", "--until", "2026-06-30T23:59:59.999999Z")
    bad = mot(store, "query", "transitions", "--since", "June", ok=False)
    assert bad.exit_code == 2 and "a date such as 2026-06-01" in bad.stderr
    naive = mot(store, "query", "transitions", "--since", "2026-06-01T10:00:00", ok=False)
    assert "has no offset; add Z (UTC) or +HH:MM" in naive.stderr
    page = CliRunner().invoke(cli, ["query", "--help"]).output
    assert "relationships by their last moment" in " ".join(page.split())


def test_log_and_timeline_take_the_same_options(tmp_path: Path) -> None:
    store = str(tmp_path / "mot.db")
    mot(store, "import", "-q", lines_file(tmp_path, moment(tenant="acme", customer_id="c9")))
    log = json.loads(mot(store, "log", "--tenant", "acme", "--customer", "c9").stdout)
    timeline = json.loads(mot(store, "timeline", "--tenant", "acme", "--customer", "c9").stdout)
    assert [r["moment_id"] for r in log] == [r["moment_id"] for r in timeline]
    # The older form of timeline keeps working for scripts that use it.
    assert json.loads(mot(store, "timeline", "acme", "c9").stdout) == timeline
    missing = mot(store, "timeline", "--tenant", "acme", ok=False)
    assert missing.exit_code == 2 and "--customer" in missing.stderr


def test_status_show_and_story_formats(tmp_path: Path) -> None:
    store = str(tmp_path / "mot.db")
    mot(store, "import", "-q", lines_file(tmp_path, moment()))
    mot(store, "project")
    assert json.loads(mot(store, "status", "--format", "json").stdout)["ledger_head"] == 1
    header, row = mot(store, "status", "--format", "csv").stdout.splitlines()
    assert header == ("ledger_head,projection_position,lag,lag_seconds,oldest_unprojected_at,"
                      "last_progress_at,quarantined,rebuild,alerts_raised,alerts_pending,alerts_delivered,"
                      "alerts_failed,suspect_persons")
    assert row.startswith("1,1,0,0.0,,") and row.endswith("Z,0,,0,0,0,0,0")  # last_progress_at: a time
    assert json.loads(mot(store, "status", "--format", "jsonl").stdout)["lag"] == 0
    history = json.loads(mot(store, "show", "crm:1", "--tenant", "acme", "--format", "json").stdout)
    assert [r["event"] for r in history] == ["recorded"]
    csv_lines = mot(store, "show", "crm:1", "--tenant", "acme", "--format", "csv").stdout
    assert csv_lines.splitlines()[0] == "version,recorded_at,origin,event,moment"
    facts = mot(store, "story", "--format", "jsonl").stdout.splitlines()
    assert [json.loads(line)["tenant"] for line in facts] == ["acme"]


def test_sample_writes_the_generators_lines(tmp_path: Path) -> None:
    out = CliRunner().invoke(cli, ["sample", "300", "--seed", "3", "--bad-lines"])
    assert out.exit_code == 0
    assert out.stdout_bytes == b"".join(generate_lines(300, seed=3, bad_lines=True))
    store = str(tmp_path / "mot.db")
    result = mot(store, "import", "-", "--summary-json", "-q", input=out.stdout_bytes)
    assert json.loads(result.stdout)["read"] == 300
    path = tmp_path / "s.jsonl"
    assert CliRunner().invoke(cli, ["sample", "10", "-o", str(path)]).exit_code == 0
    assert path.read_bytes() == b"".join(generate_lines(10))


def test_shell_completion_completes_commands_and_choices() -> None:
    env = {**os.environ, "_MOT_COMPLETE": "bash_complete", "COMP_WORDS": "mot qu",
           "COMP_CWORD": "1"}
    done = run([sys.executable, "-m", "mot"], env=env, timeout=120)
    assert done.stdout.decode().split() == ["plain,quarantine", "plain,query"]
    env |= {"COMP_WORDS": "mot query teams --function s", "COMP_CWORD": "4"}
    done = run([sys.executable, "-m", "mot"], env=env, timeout=120)
    assert done.stdout.decode().split() == ["plain,service", "plain,sales"]


def test_kafka_ingest_waits_for_the_broker_as_long_as_asked(tmp_path: Path) -> None:
    import socket

    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    # The command's own time (timed_mot): a process's start-up alone can take tens of seconds
    # on a loaded machine (CI's), and it failed the test when the wait was timed from outside.
    env = {k: v for k, v in os.environ.items() if k != "MOT_STORE"}
    done, took = timed_mot(["--store", tmp_path / "mot.db", "kafka", "ingest", "--topic", "t",
                            "--group", "g", "--bootstrap-servers", f"127.0.0.1:{port}",
                            "--wait-for-broker", "2", "-q"],
                           imports=("mot.adapters.kafka.client", "mot.bootstrap",
                                    "mot.cli.kafka_commands", "mot.service.parsing",
                                    "mot.service.resilience", "mot.service.streaming"),
                           env=env, exits=1)
    assert "cannot reach the Kafka broker" in done.stderr
    # One attempt's end is on top of the 2 s; kafka-python alone took 30 s.
    assert 2 <= took < 15, done.stderr


def test_a_quick_import_to_a_log_shows_no_progress_line_of_zeros(tmp_path: Path) -> None:
    """Standard error to a file or a pipe (a script, a cron job) got a progress line the
    moment the import began: "0 lines, 0 read, 0 recorded ... 100%, ETA 0:00:00" above the
    summary of what it recorded. A progress line comes once a command has run a while."""
    store = str(tmp_path / "mot.db")
    path = tmp_path / "sample.jsonl"
    with path.open("wb") as out:
        out.writelines(generate_lines(50, seed=3))
    result = mot(store, "import", path)
    assert "read 50: recorded" in result.stdout
    assert "0 recorded" not in result.stderr and "ETA" not in result.stderr, result.stderr


def test_an_output_file_that_cannot_be_written_is_named_not_blamed_on_the_store(
        tmp_path: Path) -> None:
    """`mot report --out` into a folder that does not exist said "store error: [Errno 2] No
    such file or directory: ...", as if the store were broken."""
    store = str(tmp_path / "mot.db")
    mot(store, "import", "-q", lines_file(tmp_path, moment()))
    out = tmp_path / "no-such-folder" / "report.html"
    result = mot(store, "report", "--out", out, ok=False)
    assert result.exit_code == 1
    assert result.stderr == f"Error: {out}: No such file or directory\n"


@pytest.mark.parametrize("command", ["log", "timeline"])
def test_a_customer_of_another_tenant_is_found_for_a_user_who_left_out_tenant(
        tmp_path: Path, command: str) -> None:
    """--tenant defaults to "default": `mot log --customer c1` of acme's c1 said only "no
    current moments for customer 'c1' of 'default'"; it now says where c1 is."""
    store = str(tmp_path / "mot.db")
    mot(store, "import", "-q", lines_file(tmp_path, moment()))
    result = mot(store, command, "--customer", "c1", ok=False)
    assert result.exit_code == 1
    assert result.stderr == ("Error: no current moments for customer 'c1' of 'default'"
                             " (tenant acme has it: --tenant acme)\n")
    assert mot(store, command, "--customer", "c1", "--tenant", "acme", "--format", "json").stdout


HUGE = "99999999999999999999999"


@pytest.mark.parametrize("args", [
    ("query", "relationships", "--limit", HUGE),
    ("query", "persons", "--min-ids", HUGE),
    ("alerts", "list", "--limit", HUGE),
    ("quarantine", "list", "--limit", HUGE),
    ("quarantine", "show", HUGE),
    ("quarantine", "drop", HUGE),
    ("quarantine", "replay", HUGE),
    ("token", "revoke", HUGE),
    ("project", "--page-size", HUGE),
    ("project", "--follow", "--poll", "-1"),
], ids=lambda args: "-".join(a for a in args if a not in (HUGE, "-1")))
def test_a_number_past_what_a_store_holds_is_refused_naming_the_option(
        store_url: str, args: tuple[str, ...]) -> None:
    """A count or id past a 64-bit integer went to the driver: SQLite's 'OverflowError:
    Python int too large to convert to SQLite INTEGER' traceback or a bare 'store error:
    datatype mismatch'; a negative --poll failed in time.sleep with a traceback. A usage
    error now, naming the option and its range, before anything is read or changed."""
    mot(store_url, "import", "-q", "-", input=b'{"tenant": "acme"}\n')  # one quarantined
    refused = mot(store_url, *args, ok=False)
    assert refused.exit_code == 2, (refused.output, refused.exception)
    assert "Error: Invalid value for '" in refused.stderr
    assert ("is not in the range 1<=x<=9223372036854775807." in refused.stderr
            or "-1.0 is not in the range 0.01<=x<=1000000000.0." in refused.stderr), refused.stderr
    assert len(mot(store_url, "quarantine", "list", "--format", "json").stdout) > 2


def float_options() -> list[tuple[list[str], str, object]]:
    """Every option of every command that takes a number with a fraction: (path, --name, type)."""

    found: list[tuple[list[str], str, object]] = []
    for path in all_commands():
        for param in command_at(path).params:
            if isinstance(param, click.Option) and isinstance(param.type, click.types.FloatParamType):
                found.append((path, max(param.opts, key=len), param.type))
    return found


def test_every_float_option_refuses_nan_and_infinity(tmp_path: Path) -> None:
    """click's FloatRange lets nan and inf through (nan compares false with both bounds):
    `mot project --follow --poll nan` looped without waiting, and `--poll 1e300` reached
    time.sleep as an OverflowError traceback (and `mot serve --tenant-rate nan` would have
    made a token bucket that never refills). Every float option is now the one finite type of
    cli/params.py, and each such value is a usage error naming the option."""
    from mot.cli.params import Finite

    options = float_options()
    assert (["project"], "--poll", SECONDS) in options and len(options) >= 12
    for path, option, kind in options:
        assert isinstance(kind, Finite), (path, option)
        for value in ("nan", "inf", "-inf", "1e300"):
            refused = CliRunner().invoke(cli, ["--store", str(tmp_path / "none.db"), *path,
                                               option, value])
            assert refused.exit_code == 2, (path, option, value, refused.output)
            # (an option read from the environment too names its variable after it)
            assert f"Error: Invalid value for '{option}'" in refused.stderr, refused.stderr
            assert (f"is not a finite number of {kind.unit}." in refused.stderr
                    or "1e+300 is not in the range" in refused.stderr), refused.stderr
    assert not list(tmp_path.iterdir())


def test_a_refused_write_on_a_new_path_leaves_nothing_beside_it(tmp_path: Path) -> None:
    """`mot token create --scope bogus` (or a tenant of spaces) on a new path was refused
    after the store had been made: the user found a store and its .lock file where nothing
    had been written. Each refusal below now happens before anything is created (SQLite
    only: a PostgreSQL store is a database the user made, not files mot lays down)."""
    (tmp_path / "bad.csv").write_text("foo,bar\n1,2\n")
    store = str(tmp_path / "new" / "mot.db")
    for args in (("token", "create", "--tenant", "acme", "--scope", "bogus"),
                 ("token", "create", "--tenant", " acme", "--scope", "read"),
                 ("token", "create", "--tenant", "acme", "--label", "x" * 10_000),
                 ("import", str(tmp_path / "bad.csv")),
                 ("import", "--format", "xml", str(tmp_path / "bad.csv")),
                 ("erase", "--tenant", "acme", "--customer", "c1")):
        refused = mot(store, *args, ok=False)
        assert refused.exit_code in (1, 2) and refused.stderr.startswith(("Error: ", "Usage: ")), (
            args, refused.output)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"], args


def test_sample_refuses_more_customers_than_moments() -> None:
    """`mot sample 2 --customers 99999999999999999999` laid out a story per customer: it
    ran minutes at full CPU and grew past 9 GB before writing a line."""
    refused = CliRunner().invoke(cli, ["sample", "2", "--customers", "99999999999999999999"])
    assert refused.exit_code == 2
    assert ("Invalid value for '--customers': 99999999999999999999 is more customers than the"
            " 2 moments asked for: at most 2") in refused.stderr
    assert CliRunner().invoke(cli, ["sample", "3", "--customers", "3"]).stdout.count("\n") == 3


def test_ids_are_kept_as_sent_and_exact_in_json_and_csv(tmp_path: Path) -> None:
    """docs/importing.md: SPEC §2 gives ids a length and code-point order, nothing else, so
    mot neither trims nor normalises them. NFC and NFD spellings, a leading space and a
    bidirectional override are four customer ids; json and csv print them exactly (a value
    that begins with = stays as it is: csv is exact, docs/analysis.md says how to open it)."""
    store = str(tmp_path / "mot.db")
    ids = ["\u00e9", "e\u0301", " \u00e9", "\u202eevil", "=HYPERLINK(1)"]
    mot(store, "import", "-q", lines_file(tmp_path, *(
        moment(customer_id=c, source={"system": "crm", "id": str(i)})
        for i, c in enumerate(ids))))
    rows = query(store, "relationships", "--columns", "customer_id")
    assert sorted(r["customer_id"] for r in rows) == sorted(ids)
    csv_out = mot(store, "query", "relationships", "--columns", "customer_id",
                  "--format", "csv").stdout
    assert sorted(csv_out.splitlines()[1:]) == sorted(ids)


def test_a_csv_answer_with_no_rows_still_has_its_header(tmp_path: Path) -> None:
    """README's `mot query reciprocity --status stop_asking --format csv > stop-asking.csv`
    wrote an empty line when no customer matched: a sheet with no columns. The header is
    each query's fields, the same as when rows come."""
    from mot.service.queries import QUERY_NAMES, QueryService

    store = str(tmp_path / "mot.db")
    sample_store(store, tmp_path, 2000)
    for name in QUERY_NAMES:
        [record] = query(store, name, "--limit", "1")
        assert list(record) == QueryService.fields(name), name
    one = str(tmp_path / "one.db")
    mot(one, "import", "-q", lines_file(tmp_path, moment()))
    out = mot(one, "query", "reciprocity", "--status", "stop_asking", "--format", "csv").stdout
    assert out == ",".join(QueryService.fields("reciprocity")) + "\n"
    assert out.startswith("tenant,customer_id,given,asked,")


def test_log_and_timeline_take_the_customer_as_an_argument(tmp_path: Path) -> None:
    """`mot log c-1042` (as `mot show` and `identity show` take their id) answered 'Got
    unexpected extra argument (c-1042)'; timeline took only TENANT CUSTOMER."""
    from cli_support import mot

    store = str(tmp_path / "mot.db")
    line = ('{"tenant": "acme", "customer_id": "c-1042", "occurred_at": "2026-06-01T09:30:00Z",'
            ' "channel": "email", "direction": "inbound", "kind": "question", "source":'
            ' {"system": "zendesk", "id": "ZD-881"}}')
    mot(store, "import", "-q", "-", input=line)
    for command in ("log", "timeline"):
        given = mot(store, command, "--tenant", "acme", "c-1042", "--format", "json").stdout
        named = mot(store, command, "--tenant", "acme", "--customer", "c-1042",
                    "--format", "json").stdout
        assert given == named and '"question"' in given, command
        assert mot(store, command, "acme", "c-1042", "--format", "json").stdout == named
        elsewhere = mot(store, command, "c-1042", ok=False)
        assert elsewhere.stderr == ("Error: no current moments for customer 'c-1042' of 'default'"
                                    " (tenant acme has it: --tenant acme)\n"), command
        twice = mot(store, command, "--customer", "c-1042", "c-1043", ok=False)
        assert twice.exit_code == 2
        assert (f"got 'c-1043' beside --customer: give the customer once, as mot {command} "
                f"--tenant T --customer C (or mot {command} [--tenant T] C)") in twice.stderr


def test_a_count_out_of_range_names_no_store_ceiling(tmp_path: Path) -> None:
    """`mot query relationships --limit -1` said '-1 is not in the range
    1<=x<=9223372036854775807', a ceiling nobody asked about."""
    from cli_support import mot

    said = mot(str(tmp_path / "mot.db"), "query", "relationships", "--limit", "-1", ok=False)
    assert said.exit_code == 2
    assert "Invalid value for '--limit': -1 is not in the range x>=1." in said.stderr
