"""Personal fields sealed at rest (SPEC §6): the ledger holds a moment's `customer_id`, `actor`,
`url`, `attributes` and `source.id` only encrypted under its customer's data key; every read
opens them; a wrong master key is one clear error; `MOT_KEYSTORE` keeps the keys apart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import mot, query

from mot.bootstrap import Services, open_store

PERSONAL = ["x:maria-sealed", "@maria_handle", "https://example.com/maria-post",
            "maria-attribute-text", "src-maria-1"]


def _moments() -> bytes:
    lines = [
        {"tenant": "acme", "customer_id": "x:maria-sealed", "occurred_at": "2026-03-01T09:00:00Z",
         "channel": "twitter", "direction": "inbound", "kind": "question", "actor": "@maria_handle",
         "attributes": {"note": "maria-attribute-text"}, "source": {"system": "x", "id": "src-maria-1"}},
        {"tenant": "acme", "customer_id": "x:maria-sealed", "occurred_at": "2026-03-01T10:00:00Z",
         "channel": "twitter", "direction": "public", "kind": "post", "sentiment": 0.8, "reach": 40,
         "url": "https://example.com/maria-post", "source": {"system": "x", "id": "src-maria-2"}},
        {"tenant": "acme", "customer_id": "c2", "occurred_at": "2026-03-01T11:00:00Z",
         "channel": "email", "direction": "inbound", "kind": "purchase", "value": 10.0,
         "currency": "EUR", "source": {"system": "shop", "id": "o-2"}},
    ]
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def _stored_states(url: str) -> list[bytes]:
    with open_store(url) as services, services.backend.read() as tx:
        return [bytes(row[0]) for row in tx.query("SELECT state FROM stored_events")]


def test_the_ledger_holds_personal_fields_only_sealed_and_every_read_opens_them(
        store_url: str, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(_moments())
    mot(store_url, "import", "-q", source)
    states = _stored_states(store_url)
    assert len(states) == 3
    for text in PERSONAL:
        assert not any(text.encode() in state for state in states), text
    assert all(b'"sealed"' in state for state in states)
    # The same message again is a duplicate: the check compares opened content.
    again = mot(store_url, "import", source).output
    assert "recorded 0" in again and "duplicates 3" in again, again
    mot(store_url, "project")
    live = query(store_url, "relationships", "--tenant", "acme")
    assert [r["customer_id"] for r in live] == ["c2", "x:maria-sealed"]
    log = mot(store_url, "log", "--tenant", "acme", "--customer", "x:maria-sealed",
              "--format", "json").stdout
    assert "@maria_handle" in log and "https://example.com/maria-post" in log
    amplifications = query(store_url, "amplifications")
    # A rebuild reads the sealed ledger too (opening the fields in Python) to the same rows.
    mot(store_url, "replay")
    assert query(store_url, "relationships", "--tenant", "acme") == live
    assert query(store_url, "amplifications") == amplifications
    with open_store(store_url) as services, services.backend.read() as tx:
        rows = tx.query("SELECT customer_id, actor, url, source_id FROM moments"
                        " ORDER BY occurred_us")
    assert rows[0] == ("x:maria-sealed", "@maria_handle", None, "src-maria-1")
    assert rows[1][2] == "https://example.com/maria-post"


def test_a_wrong_master_key_is_one_clear_error(tmp_path: Path) -> None:
    store = str(tmp_path / "mot.db")
    source = tmp_path / "in.jsonl"
    source.write_bytes(_moments())
    mot(store, "import", "-q", source)
    assert (tmp_path / "mot.db.key").stat().st_mode & 0o777 == 0o600
    wrong = "11" * 32
    result = mot(store, "import", source, ok=False, env={"MOT_MASTER_KEY": wrong})
    assert result.exit_code != 0
    assert "master key" in result.output and "not the one" in result.output, result.output
    (tmp_path / "mot.db.key").rename(tmp_path / "elsewhere.key")
    result = mot(store, "replay", ok=False)
    assert result.exit_code != 0, result.output
    assert "no master key" in result.output and "restore the key file" in result.output, \
        result.output
    # The store's keys exist, so no new key file is made beside it (it could only be wrong).
    assert not (tmp_path / "mot.db.key").exists()
    (tmp_path / "elsewhere.key").rename(tmp_path / "mot.db.key")
    assert mot(store, "replay").exit_code == 0


def test_MOT_KEYSTORE_keeps_the_keys_out_of_the_store(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    store = str(tmp_path / "mot.db")
    keys = tmp_path / "keys" / "mot-keys.db"
    monkeypatch.setenv("MOT_KEYSTORE", str(keys))
    source = tmp_path / "in.jsonl"
    source.write_bytes(_moments())
    mot(store, "import", "-q", source)
    mot(store, "project")
    assert [r["customer_id"] for r in query(store, "relationships")] == ["c2", "x:maria-sealed"]
    with open_store(store) as services, services.backend.read() as tx:
        assert tx.scalar("SELECT COUNT(*) FROM mot_keys") == 0
    assert keys.exists() and (tmp_path / "keys" / "mot-keys.db.key").exists()
    # Without the keystore the ledger's personal fields cannot be read: a clear error.
    monkeypatch.delenv("MOT_KEYSTORE")
    result = mot(store, "replay", ok=False)
    assert result.exit_code != 0 and "MOT_KEYSTORE" in result.output, result.output


def test_a_links_customer_ids_are_sealed_and_read_back(store_url: str, tmp_path: Path) -> None:
    from mot.domain.events import CustomersLinked

    source = tmp_path / "in.jsonl"
    source.write_bytes(_moments() + json.dumps(
        {"type": "link", "tenant": "acme", "customer_ids": ["x:maria-sealed", "email:feed0123"],
         "reason": "same address", "occurred_at": "2026-03-01T12:00:00Z"}).encode() + b"\n")
    mot(store_url, "import", "-q", source)
    states = _stored_states(store_url)
    assert len(states) == 4
    assert not any(b"email:feed0123" in s or b"x:maria-sealed" in s for s in states)
    with open_store(store_url) as services:
        links = [e for _, e in services.ledger_store.notifications(0, 100)
                 if isinstance(e, CustomersLinked)]
    assert [link.customer_ids for link in links] == [("email:feed0123", "x:maria-sealed")]
    again = mot(store_url, "import", source).output
    assert "recorded 0" in again, again  # the link again is a duplicate: opened, compared


def test_each_sealed_value_has_a_nonce_of_its_own_and_opens_under_its_moment_only(
        store_url: str, tmp_path: Path) -> None:
    """A batch's nonces come from one read of the random source (adapters/stores/sealing.py):
    still one per value, never repeated, and each box is bound to its tenant and moment."""
    import base64

    from cryptography.exceptions import InvalidTag

    from mot.adapters.crypto import NONCE_BYTES

    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(json.dumps(
        {"tenant": "acme", "customer_id": f"c{i % 3}", "occurred_at": "2026-03-01T09:00:00Z",
         "channel": "email", "direction": "inbound", "kind": "question", "actor": f"a{i}",
         "source": {"system": "x", "id": f"s-{i}"}}).encode() + b"\n" for i in range(50)))
    mot(store_url, "import", "-q", source)
    boxes = [json.loads(state)["moment"] for state in _stored_states(store_url)]
    raw = [base64.b64decode(m["sealed"]["v"]) for m in boxes]
    assert len(raw) == 50 and len({r[:NONCE_BYTES] for r in raw}) == 50
    assert len({m["sealed"]["k"] for m in boxes}) == 3  # one key a customer
    with open_store(store_url) as services, services.backend.read() as tx:
        sealing = services.ledger_store.sealing
        first, other = boxes[0], next(m for m in boxes[1:]
                                      if m["sealed"]["k"] == boxes[0]["sealed"]["k"])
        opened = [json.loads(text)["m"] for text in sealing.opened_texts(
            tx, [("acme", first["moment_id"], first["sealed"]["k"], first["sealed"]["v"])])]
        assert opened[0]["customer_id"] == "c0" and opened[0]["source_id"] == "s-0"
        aead = sealing.keystore.ciphers([first["sealed"]["k"]], tx)[first["sealed"]["k"]]
    with pytest.raises(InvalidTag):  # the same key, another moment's context
        aead.decrypt(raw[0][:NONCE_BYTES], raw[0][NONCE_BYTES:],
                     f"mot:event:acme/{other['moment_id']}".encode())


def test_a_keyed_digest_is_hmac_sha256_of_the_value_under_the_secret() -> None:
    """`keyed_digest` computes HMAC from hash states kept per secret (cheaper than OpenSSL's MAC
    set up per call); its digits are the standard library's HMAC-SHA256, which every stored
    customer digest, receipt and suppression entry was made with, for secrets shorter than,
    as long as and longer than SHA-256's block and values of any length."""
    import hmac
    import os

    from mot.adapters.crypto import keyed_digest

    for size in (1, 32, 63, 64, 65, 200):
        secret = os.urandom(size)
        for value in ("", "c1", "x:maria-sealed", "é" * 40, "v" * 300):
            assert keyed_digest(secret, value) == hmac.digest(secret, value.encode(), "sha256").hex()
    # Known answer (RFC 4231, test case 2): the key "Jefe".
    assert keyed_digest(b"Jefe", "what do ya want for nothing?") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")


def test_keys_made_in_a_transaction_are_kept_once_it_commits_and_dropped_if_it_rolls_back(
        store_url: str) -> None:
    """The keystore keeps the keys it made for the next transactions only when the store holds
    them: a key of a rolled-back transaction seals nothing later."""
    with open_store(store_url) as services:
        keystore, backend = services.ledger_store.sealing.keystore, services.backend
        with pytest.raises(RuntimeError), backend.write("ledger") as tx:
            lost = keystore.keys_for(tx, "acme", ["c-lost", "c-kept"])
            raise RuntimeError("roll back")
        with backend.write("ledger") as tx:
            made = keystore.keys_for(tx, "acme", ["c-kept"])
        with backend.write("ledger") as tx:
            again = keystore.keys_for(tx, "acme", ["c-lost", "c-kept"])
            assert tx.scalar("SELECT COUNT(*) FROM mot_keys") == 2
    assert made["c-kept"][0] != lost["c-kept"][0]
    assert again["c-kept"][0] == made["c-kept"][0]
    assert again["c-lost"][0] != lost["c-lost"][0]
    with open_store(store_url) as services, services.backend.read() as tx:
        fresh = services.ledger_store.sealing.keystore
        fresh.master(tx)
        stored = fresh.key_ids_of(tx, "acme", ["c-kept", "c-lost"])
    assert stored == {"c-kept": again["c-kept"][0], "c-lost": again["c-lost"][0]}


def test_the_keys_of_a_committed_transaction_are_kept_without_reading_them_back(
        store_url: str) -> None:
    """A transaction that committed holds every key made in it: the next transaction finds
    them (the same key ids, the same ciphers) without asking the keystore's table again."""
    import sqlite3

    with open_store(store_url) as services:
        keystore, backend = services.ledger_store.sealing.keystore, services.backend
        with backend.write("ledger") as tx:
            made = keystore.keys_for(tx, "acme", ["c-1", "c-2"])
            assert not tx.committed
        assert tx.committed
        statements: list[str] = []
        with backend.write("ledger") as tx:
            connection = getattr(tx.cursor, "connection", None)
            if isinstance(connection, sqlite3.Connection):
                connection.set_trace_callback(statements.append)
            again = keystore.keys_for(tx, "acme", ["c-2", "c-1"])
            if isinstance(connection, sqlite3.Connection):
                connection.set_trace_callback(None)
                assert statements == []  # no key read back, none made
            assert tx.scalar("SELECT COUNT(*) FROM mot_keys") == 2
    assert {cid: key_id for cid, (key_id, _) in again.items()} == \
        {cid: key_id for cid, (key_id, _) in made.items()}
    assert again["c-1"][1] is made["c-1"][1]


def test_a_key_made_meanwhile_by_another_process_is_the_one_used(store_url: str) -> None:
    """Keys are made for new customers without a look first (an import meets them in runs): a
    customer that another process gave a key meanwhile keeps that key (its row is not inserted
    again; the keystore reads the stored one and seals with it), and the others of the same
    call get keys of their own: one key a customer in the store."""
    with open_store(store_url) as first, open_store(store_url) as second:
        one, two = first.ledger_store.sealing.keystore, second.ledger_store.sealing.keystore
        with first.backend.write("ledger") as tx:
            early = one.keys_for(tx, "acme", ["c-1", "c-3"])
        with second.backend.write("ledger") as tx:
            late = two.keys_for(tx, "acme", ["c-1", "c-2", "c-3", "c-4"])
            stored = dict(tx.query("SELECT key_id, customer FROM mot_keys"))
        with second.backend.write("ledger") as tx:  # all new: every row inserted
            more = two.keys_for(tx, "acme", ["c-5", "c-6"])
            assert tx.scalar("SELECT COUNT(*) FROM mot_keys") == 6
    assert late["c-1"][0] == early["c-1"][0] and late["c-3"][0] == early["c-3"][0]
    assert sorted(stored) == sorted(key_id for key_id, _ in late.values())
    assert len(set(stored.values())) == 4
    nonce = bytes(12)
    assert late["c-1"][1].decrypt(nonce, early["c-1"][1].encrypt(nonce, b"x", b"a"), b"a") == b"x"
    assert more["c-5"][0] not in stored and more["c-6"][0] not in stored


def test_the_key_caches_keep_the_keys_used_last_and_no_cipher_of_a_destroyed_key(
        store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process keeps at most CUSTOMER_KEYS keys by customer, CACHED_KEYS by key id and
    HOT_CIPHERS ciphers, the ones it used last:
    an import meeting more customers than that finds a customer met a moment ago without a
    read (the caches used to start afresh when full, dropping the keys in use with the rest),
    reuses a key's cipher while it is hot, and keeps nothing of a key it destroyed."""
    from cryptography.exceptions import InvalidTag

    from mot.adapters.stores import keystore as keystore_module

    monkeypatch.setattr(keystore_module, "CACHED_KEYS", 4)
    monkeypatch.setattr(keystore_module, "CUSTOMER_KEYS", 4)
    monkeypatch.setattr(keystore_module, "HOT_CIPHERS", 4)
    with open_store(store_url) as services:
        keystore, backend = services.ledger_store.sealing.keystore, services.backend
        made = {}
        for i in range(9):  # a transaction each: a key is kept once its transaction committed
            with backend.write("ledger") as tx:
                made |= keystore.keys_for(tx, "acme", [f"c-{i}"])
        with backend.write("ledger") as tx:
            again = keystore.keys_for(tx, "acme", ["c-8", "c-7"])
        assert again["c-8"][0] == made["c-8"][0] and again["c-7"][0] == made["c-7"][0]
        assert ("acme", "c-7") in keystore._by_customer  # kept, not read again
        assert again["c-8"][1] is made["c-8"][1]  # the same cipher, not made again
        assert len(keystore._by_customer) <= 4 and len(keystore._by_id) <= 4
        assert len(keystore._ciphers) <= 4
        nonce = bytes(12)
        sealed = again["c-8"][1].encrypt(nonce, b"x", None)
        with backend.write("ledger") as tx:
            assert keystore.destroy(tx, [made["c-8"][0]]) == 1
        assert made["c-8"][0] not in keystore._ciphers
        assert made["c-8"][0] not in keystore._by_id
        assert ("acme", "c-8") not in keystore._by_customer
        assert keystore.ciphers([made["c-8"][0], made["c-7"][0]]).keys() == {made["c-7"][0]}
        with backend.write("ledger") as tx:  # a new key for c-8: its old one opens nothing
            renewed = keystore.keys_for(tx, "acme", ["c-8"])["c-8"]
        assert renewed[0] != made["c-8"][0]
        with pytest.raises(InvalidTag):
            renewed[1].decrypt(nonce, sealed, None)


def test_a_serving_process_keeps_fewer_customers_keys(
        store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """mot serve (its app calls Services.serving) keeps at most SERVER_CUSTOMER_KEYS customers'
    keys, where a command keeps CUSTOMER_KEYS: a server's memory does not grow with the
    customers it has met. The keys it let go are read back, the same ones."""
    from mot.adapters.http.app import create_app
    from mot.adapters.stores import keystore as keystore_module

    monkeypatch.setattr(keystore_module, "CUSTOMER_KEYS", 16)
    monkeypatch.setattr(keystore_module, "SERVER_CUSTOMER_KEYS", 4)

    def meet(services: Services, customers: range) -> dict[str, str]:
        keystore, backend = services.ledger_store.sealing.keystore, services.backend
        made = {}
        for i in customers:  # a transaction each: a key is kept once its transaction committed
            with backend.write("ledger") as tx:
                made[f"c-{i}"] = keystore.keys_for(tx, "acme", [f"c-{i}"])[f"c-{i}"][0]
        with backend.write("ledger") as tx:  # the last one's transaction settled
            keystore.keys_for(tx, "acme", [f"c-{customers[-1]}"])
        return made

    with open_store(store_url) as services:
        keystore = services.ledger_store.sealing.keystore
        made = meet(services, range(10))
        assert len(keystore._by_customer) == 10  # a command: up to 16
    with open_store(store_url) as services:
        create_app(services)
        keystore = services.ledger_store.sealing.keystore
        again = meet(services, range(10))
        assert again == made  # read back, the same keys
        assert len(keystore._by_customer) <= 4
        assert ("acme", "c-9") in keystore._by_customer  # the last met are kept


def test_a_rebuild_opens_boxes_in_the_database_as_in_python_and_names_a_tampered_one(
        store_url: str, tmp_path: Path) -> None:
    """SQLite opens the boxes inside the rebuild's own statement (`Sealing.in_database`),
    PostgreSQL in Python: the same rows either way; a box that does not open is one clear
    error naming its moment, not SQLite's "user-defined function raised exception"."""
    source = tmp_path / "in.jsonl"
    source.write_bytes(_moments())
    mot(store_url, "import", "-q", source)
    mot(store_url, "replay")
    with open_store(store_url) as services, services.backend.read() as tx:
        in_database = tx.query("SELECT * FROM moments ORDER BY tenant, moment_id")
    with open_store(store_url) as services:
        services.projection_store.unsealer = None  # the Python path
        services.projections.replay()
        with services.backend.read() as tx:
            assert tx.query("SELECT * FROM moments ORDER BY tenant, moment_id") == in_database
        with services.backend.write("ledger") as tx:
            stream, stored = tx.query("SELECT originator_id, state FROM stored_events"
                                      " WHERE originator_version = 1 LIMIT 1")[0]
            state = json.loads(bytes(stored))
            box = state["moment"]["sealed"]
            box["v"] = box["v"][:20] + ("A" if box["v"][20] != "A" else "B") + box["v"][21:]
            tx.execute("UPDATE stored_events SET state = ? WHERE originator_id = ?"
                       " AND originator_version = 1", (json.dumps(state).encode(), stream))
    result = mot(store_url, "replay", ok=False)
    assert result.exit_code != 0
    assert f"moment {state['moment']['moment_id']} does not open" in result.output, result.output


def test_the_function_that_opens_boxes_in_the_database_is_gone_when_its_rebuild_is_done(
        tmp_path: Path) -> None:
    """SQLite: the rebuild's box-opening SQL function holds every data key's cipher and the
    erasures as they were then. Left on the connection it kept them (memory the key cache had
    let go) and would still open a box whose key an erasure has destroyed since."""
    import sqlite3

    store = str(tmp_path / "mot.db")
    source = tmp_path / "in.jsonl"
    source.write_bytes(_moments())
    mot(store, "import", "-q", source)
    box = ("SELECT mot_unseal(json_extract(s, '$.moment.tenant'),"
           " json_extract(s, '$.moment.moment_id'), json_extract(s, '$.moment.sealed.k'),"
           " json_extract(s, '$.moment.sealed.v')) FROM (SELECT CAST(state AS TEXT) AS s"
           " FROM stored_events) WHERE s LIKE '%sealed%' LIMIT 1")
    with open_store(store) as services:
        services.projections.replay(workers=0)  # this thread's connection loads the moments
        mot(store, "erase", "--tenant", "acme", "--customer", "x:maria-sealed", "--reason", "r")
        with services.backend.read() as tx, pytest.raises(sqlite3.OperationalError):
            tx.query(box)  # it opened her box (customer id, actor, source id) before


def test_past_the_key_cache_a_rebuild_opens_boxes_with_the_keys_read_beside_them(
        store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store of more keys than a process keeps (keystore.CACHED_KEYS; a million sample
    moments hold 83,331): SQLite's rebuild statement still opens the boxes itself, given each
    key's wrapped bytes read beside its event (KEYED_UNSEAL_FUNCTION), where it fell back to
    reading them into Python; PostgreSQL opens them in Python, a part at a time. No key is
    kept; the rows are those of the store whose keys are all cached; an erased person's
    moments still open to her pseudo id, none of her fields."""
    from mot.adapters.stores import keystore
    from mot.adapters.stores.sealing import KEYED_UNSEAL_FUNCTION

    source = tmp_path / "in.jsonl"
    others = [{"tenant": "acme", "customer_id": f"c-{i}", "occurred_at": f"2026-03-0{1 + i}T09:00:00Z",
               "channel": "email", "direction": "inbound", "kind": "question", "actor": f"a-{i}",
               "source": {"system": "x", "id": f"s-{i}"}} for i in range(6)]
    source.write_bytes(_moments() + b"".join(json.dumps(m).encode() + b"\n" for m in others))
    mot(store_url, "import", "-q", source)
    mot(store_url, "project", "-q")
    mot(store_url, "erase", "--tenant", "acme", "--customer", "x:maria-sealed", "--reason", "r")
    every = "SELECT * FROM moments ORDER BY tenant, moment_id"
    with open_store(store_url) as services:
        services.projections.replay(workers=0)
        with services.backend.read() as tx:
            cached = tx.query(every)
    monkeypatch.setattr(keystore, "CACHED_KEYS", 2)
    with open_store(store_url) as services:
        sealing = services.ledger_store.sealing
        with sealing.in_database() as function:
            assert function == (KEYED_UNSEAL_FUNCTION if store_url.endswith(".db") else None)
        services.projections.replay(workers=0)
        with services.backend.read() as tx:
            assert tx.query(every) == cached
        assert not sealing.keystore._by_id
    # The statement keeps the ciphers of the keys it unwrapped last (sealing.RECENT_KEYS):
    # the same rows when it keeps one cipher only.
    from mot.adapters.stores import sealing as sealing_module

    monkeypatch.setattr(sealing_module, "RECENT_KEYS", 1)
    with open_store(store_url) as services:
        services.projections.replay(workers=0)
        with services.backend.read() as tx:
            assert tx.query(every) == cached
    text = repr(cached)
    assert "c-5" in text and "a-5" in text and "s-5" in text
    assert not any(field in text for field in PERSONAL)
    assert sum("erased" in str(row) for row in cached) == 2


def test_a_process_keeps_a_bounded_number_of_tenant_secrets(
        store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each message names its tenant, so a long-running ingest meets as many tenants as its
    senders name: a process keeps at most keystore.CACHED_TENANTS of their secrets, and a
    tenant's digests are the same after its secret was let go and made again."""
    from mot.adapters.stores import keystore

    monkeypatch.setattr(keystore, "CACHED_TENANTS", 3)
    with open_store(store_url) as services:
        keys = services.ledger_store.sealing.keystore
        first = keys.digest("t-0", "x:maria")
        for i in range(10):
            keys.digest(f"t-{i}", "x:maria")
            assert len(keys._secrets) <= 3
        assert keys.digest("t-0", "x:maria") == first
        assert keys.digest("t-1", "x:maria") != first
