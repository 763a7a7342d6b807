"""`mot verify` recomputes the projections from the ledger and names every stored row that differs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from process_support import run

from mot.bootstrap import open_store

MOT = Path(sys.executable).parent / "mot"


def mot(store: str, *args: str, exits: int = 0) -> subprocess.CompletedProcess[str]:
    """`mot --store STORE ARGS`; unless it exits with `exits`, fail showing its streams."""
    return run([str(MOT), "--store", store, *args], text=True, timeout=300, exits=exits)


def tamper(store: str, statement: str) -> None:
    services = open_store(store)
    try:
        with services.backend.write("projections") as tx:
            tx.execute(statement)
    finally:
        services.close()


def test_verify_passes_then_names_each_tampered_row(store_url: str, golden_path: Path) -> None:
    mot(store_url, "import", str(golden_path), "-q")
    clean = mot(store_url, "verify", "-q")
    assert "verified:" in clean.stdout and "35 events" in clean.stdout
    mot(store_url, "verify", "--tenant", "acme", "-q")
    # Worker processes copy the sealed moments (a tenant's alone when asked) and fold them.
    for tenant in ((), ("--tenant", "acme")):
        workers = mot(store_url, "verify", *tenant, "--workers", "2", "-q")
        assert "35 events" in workers.stdout

    before = json.loads(mot(store_url, "query", "relationships", "--tenant", "acme", "--customer", "c1",
                            "--format", "json").stdout)[0]
    tamper(store_url, "UPDATE relationships SET exchanges = exchanges + 5"
                      " WHERE tenant = 'acme' AND customer_id = 'c1'")
    tamper(store_url, "DELETE FROM teams WHERE tenant = 'acme' AND function = 'logistics'")
    found = mot(store_url, "verify", "--no-refresh", "--format", "json", "-q", exits=1)
    assert "2 difference(s)" in found.stderr
    assert sorted(json.loads(found.stdout), key=lambda d: d["projection"]) == [
        {"projection": "relationships", "key": "acme/c1", "field": "exchanges",
         "stored": before["exchanges"] + 5, "expected": before["exchanges"]},
        {"projection": "teams", "key": "acme/logistics", "field": "(row)", "stored": "absent",
         "expected": "present"},
    ]
    in_workers = mot(store_url, "verify", "--no-refresh", "--workers", "2", "--format", "json", "-q",
                     exits=1)
    assert in_workers.stdout == found.stdout
    # Another tenant's check does not see acme's damage.
    mot(store_url, "verify", "--no-refresh", "--tenant", "globex", "-q")
    mot(store_url, "verify", "--no-refresh", "--tenant", "globex", "--workers", "2", "-q")


def test_verify_rebuilds_in_worker_processes_and_from_an_unsealed_ledger(
        store_url: str, golden_path: Path) -> None:
    # A store of an older mot: its ledger keeps personal fields in the clear, so the scratch
    # store's moments are read by the database's own JSON functions, not opened in Python.
    services = open_store(store_url)
    try:
        with services.backend.write("ledger") as tx:
            tx.execute("UPDATE mot_upgrades SET done = 0 WHERE step = 'ledger sealed'")
    finally:
        services.close()
    mot(store_url, "import", str(golden_path), "-q")
    clean = mot(store_url, "verify", "--workers", "2", "-q")
    assert "35 events" in clean.stdout
    tamper(store_url, "UPDATE responses SET response_seconds = response_seconds + 1"
                      " WHERE response_seconds IS NOT NULL")
    found = mot(store_url, "verify", "--no-refresh", "--workers", "2", "--format", "json", "-q",
                exits=1)
    differences = json.loads(found.stdout)
    assert differences and {(d["projection"], d["field"]) for d in differences} == {
        ("responses", "response_seconds")}
    assert all(d["stored"] == d["expected"] + 1 for d in differences)


def test_a_bounded_key_cache_opens_and_verifies_the_same(
        store_url: str, golden_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A process keeps at most CACHED_KEYS data keys (each cipher holds an OpenSSL context):
    # here 2, and verify copies 5 ledger positions at a time, so its opening of the sealed
    # moments starts the cache afresh again and again, and must read every key again right.
    from cli_support import mot as mot_here

    from mot.adapters.stores import keystore
    from mot.service import verify

    mot_here(store_url, "import", golden_path, "-q")
    mot_here(store_url, "project", "-q")
    monkeypatch.setattr(keystore, "CACHED_KEYS", 2)
    monkeypatch.setattr(verify, "COPY_POSITIONS", 5)
    with open_store(store_url) as services:
        keys = services.ledger_store.sealing.keystore
        result = services.verifier.verify(workers=0)
        assert result.differences == 0 and result.rows > 0
        # Each range's keys are dropped once it is copied: none is kept past the last.
        assert not keys._by_id
        with services.backend.read() as tx:
            ids = [str(key_id) for (key_id,) in tx.query("SELECT key_id FROM mot_keys")]
        assert len(ids) > 2
        every = dict(keys.ciphers(ids))
        assert len(every) == len(ids)
        nonce = bytes(12)
        for key_id in ids:
            again = keys.ciphers([key_id])[key_id]  # read again after the cache started afresh
            assert again.decrypt(nonce, every[key_id].encrypt(nonce, b"x", None), None) == b"x"
            assert len(keys._by_id) <= 2


def test_verify_stopped_by_sigterm_removes_its_scratch_store(tmp_path: Path) -> None:
    import os
    import signal
    import time

    store = str(tmp_path / "big.db")
    sample = run([str(MOT), "sample", "20000"])
    (tmp_path / "sample.jsonl").write_bytes(sample.stdout)
    mot(store, "import", str(tmp_path / "sample.jsonl"), "-q")
    mot(store, "project", "-q")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    running = subprocess.Popen([str(MOT), "--store", store, "verify", "-q"],
                               env={**os.environ, "TMPDIR": str(scratch)},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(scratch.glob("mot-verify-*")) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert list(scratch.glob("mot-verify-*")), "verify made no scratch folder"
    running.send_signal(signal.SIGTERM)
    _, err = running.communicate(timeout=60)
    assert running.returncode == 128 + signal.SIGTERM, err
    assert "stopped (SIGTERM)" in err
    assert list(scratch.iterdir()) == []


# Her moments, first in the ledger, so that a verify copies them with its first range.
KILLED = "x:verify-killed"
KILLED_ACTOR = b"@verify_killed_actor"


def _her_lines(customer: str, actor: bytes) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in [
        {"tenant": "acme", "customer_id": customer, "occurred_at": "2026-03-01T09:00:00Z",
         "channel": "twitter", "direction": "inbound", "kind": "question",
         "actor": actor.decode(), "source": {"system": "x", "id": f"src-{customer}-1"}},
        {"tenant": "acme", "customer_id": customer, "occurred_at": "2026-03-01T10:00:00Z",
         "channel": "twitter", "direction": "outbound", "kind": "answer", "function": "service",
         "source": {"system": "x", "id": f"src-{customer}-2"}}])


def _holding(folder: Path, secret: bytes) -> bool:
    """Whether a file in `folder` (a scratch store's database, its WAL) holds `secret`."""
    import contextlib

    with contextlib.suppress(OSError):  # a file, or the folder, gone while it is read
        return any(secret in f.read_bytes() for f in folder.iterdir() if f.is_file())
    return False


def _verify_holding(store: str, scratch: Path, secret: bytes) -> tuple[subprocess.Popen[str], Path]:
    """A `mot verify` of `store` (in TMPDIR `scratch`) once its scratch store holds `secret`,
    opened from the sealed ledger, still running (the kill point: mid-way, whatever the
    machine's speed), and its scratch folder."""
    import os
    import time

    running = subprocess.Popen([str(MOT), "--store", store, "verify", "-q"],
                               env={**os.environ, "TMPDIR": str(scratch)},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while running.poll() is None and time.monotonic() < deadline:
        folders = list(scratch.glob("mot-verify-*"))
        if folders and _holding(folders[0], secret):
            assert running.poll() is None, "verify ended before the kill point"
            return running, folders[0]
        time.sleep(0.02)
    running.kill()
    raise AssertionError(f"verify's scratch store never held {secret!r}: {running.communicate()}")


def test_a_verify_killed_mid_way_leaves_no_scratch_store_to_the_next_verify_nor_an_erasure(
        tmp_path: Path) -> None:
    """A verify's scratch store holds the moments opened from the sealed ledger; killed with
    SIGKILL, the verify cannot remove it, and no erasure reaches it. The next verify and the
    next erasure remove it (on any store: the folder is the machine's); a live verify's stays."""
    import os
    import signal

    store = str(tmp_path / "big.db")
    sample = run([str(MOT), "sample", "20000"])
    (tmp_path / "in.jsonl").write_bytes(_her_lines(KILLED, KILLED_ACTOR) + sample.stdout)
    mot(store, "import", str(tmp_path / "in.jsonl"), "-q")
    mot(store, "project", "-q")
    other = str(tmp_path / "other.db")  # another store, whose commands sweep the same folder
    (tmp_path / "other.jsonl").write_bytes(_her_lines("x:other", b"@other_actor"))
    mot(other, "import", str(tmp_path / "other.jsonl"), "-q")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}

    def mot_in(store: str, *args: str) -> None:
        run([str(MOT), "--store", store, *args], text=True, env=env)

    running, folder = _verify_holding(store, scratch, KILLED_ACTOR)
    running.send_signal(signal.SIGKILL)
    running.communicate(timeout=60)
    assert _holding(folder, KILLED_ACTOR)  # her actor, in the clear, with no owner
    mot_in(store, "erase", "--tenant", "acme", "--customer", KILLED, "--reason", "r")
    assert not folder.exists()
    assert list(scratch.iterdir()) == []

    running, folder = _verify_holding(store, scratch, b"c000000")  # the sample's first customer
    running.send_signal(signal.SIGKILL)
    running.communicate(timeout=60)
    assert folder.exists()
    mot_in(other, "verify", "-q")
    assert not folder.exists()
    assert list(scratch.iterdir()) == []

    # A live verify's folder stays, whatever sweeps meanwhile: its owner holds it.
    running, folder = _verify_holding(store, scratch, b"c000000")
    running.send_signal(signal.SIGSTOP)
    try:
        mot_in(other, "verify", "-q")
        mot_in(other, "erase", "--tenant", "acme", "--customer", "x:other", "--reason", "r")
        assert _holding(folder, b"c000000")
    finally:
        running.send_signal(signal.SIGCONT)
    out, err = running.communicate(timeout=300)
    assert running.returncode == 0, err
    assert out.startswith("verified:")
    assert list(scratch.iterdir()) == []


def test_a_dead_owners_folder_goes_whole_though_its_workers_still_write_in_it(
        tmp_path: Path) -> None:
    """A verify killed with SIGKILL leaves its fold workers running a while, and they write
    stage files into its folder. The sweep's removal raced them: a file made after it had
    listed the folder kept the folder, now without its lock file, which no later sweep
    removes (left alone as an older mot's): a stage of opened moments kept for good."""
    import signal

    owner = subprocess.Popen([sys.executable, "-c", (
        "import os, sys, time, subprocess\n"
        "from mot.adapters.stores.scratch_folders import make_owned\n"
        "folder = make_owned(sys.argv[1])\n"
        # A worker of its own (a new session: it outlives its owner's SIGKILL, as spawned
        # fold workers do), writing a file into the folder every millisecond for 3 s.
        "subprocess.Popen([sys.executable, '-c', 'import sys, time\\n"
        "end = time.monotonic() + 3\\n"
        "n = 0\\n"
        "while time.monotonic() < end:\\n"
        "    n += 1\\n"
        "    try:\\n"
        "        open(sys.argv[1] + \"/verify.db.stage-%d\" % n, \"wb\").write(b\"her moments\")\\n"
        "    except OSError:\\n"
        "        pass\\n"
        "    time.sleep(0.001)\\n', str(folder)], start_new_session=True)\n"
        "print(folder, flush=True)\n"
        "time.sleep(60)\n"), str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert owner.stdout is not None
    folder = Path(owner.stdout.readline().strip())
    time.sleep(0.3)
    owner.send_signal(signal.SIGKILL)
    owner.wait(30)
    from mot.adapters.stores.scratch_folders import remove_abandoned

    assert remove_abandoned(str(tmp_path)) == [folder]
    time.sleep(3.2)  # the worker has stopped writing
    remove_abandoned(str(tmp_path))  # a later sweep finds nothing to leave either
    assert list(tmp_path.iterdir()) == [], list(tmp_path.iterdir())
