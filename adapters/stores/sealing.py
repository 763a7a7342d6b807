"""Personal fields of stored events, sealed under their customer's data key (SPEC §6).

What a stored event's state holds of a person - a moment's `customer_id`, `actor`,
`url`, `attributes` and `source.id`, the same fields among an amendment's `set`,
a retraction's `customer_id` - is taken out of the JSON and kept as one AES-GCM
box, `"sealed": {"k": key id, "v": base64 of nonce + ciphertext}`, bound to the event's
tenant and moment id. Everything else stays plain JSON (the rebuild and the
analysts' SQL read it). The codec calls `seal_state` before encoding and
`open_state` after decoding; reads therefore see the moment as it came, and the
ledger's duplicate check compares decrypted content.

A box whose key was destroyed by an erasure opens to the moment without its
personal fields: its customer id becomes `erased_customer(erasure)`, a pseudo id
of the erased person (one per erasure, so the person's moments still fold
together and every per-tenant sum stays as it was), and the other personal
fields are absent. A box whose key is missing without an erasure is an error,
never silently empty.
"""

from __future__ import annotations

import base64
import os
import sqlite3
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final

import orjson
import pybase64
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mot.adapters.crypto import DATA_KEY_CONTEXT, NONCE_BYTES, KeyProblem
from mot.adapters.stores.codec import StoredRow, to_state
from mot.adapters.stores.keystore import Keystore
from mot.adapters.stores.sql import SqlBackend, Tx
from mot.adapters.stores.topics import AMENDED, LINKED, RECORDED, RETRACTED, UNLINKED
from mot.domain.erasure import erased_customer
from mot.domain.events import EncodedMoment, LedgerEvent, MomentRecorded
from mot.domain.personal import PERSONAL, join_personal, sealable, split_personal

LINK_TOPICS: Final = (LINKED, UNLINKED)
UNSEAL_FUNCTION: Final = "mot_unseal"  # see Sealing.in_database
KEYED_UNSEAL_FUNCTION: Final = "mot_unseal_keyed"  # the same, given the key's wrapped bytes
KEPT_FUNCTION: Final = "mot_key_kept"  # whether KEYED_UNSEAL_FUNCTION holds a key's cipher
RECENT_KEYS = 10_000  # ciphers KEYED_UNSEAL_FUNCTION keeps (about 1.4 KB each)
# A box's base64 (standard alphabet, padded, no newline: the stored format, as binascii
# wrote it) by pybase64's vectorised code: binascii's byte-at-a-time loop took about twice
# the instructions, once a moment sealed and once a box opened (bench/NOTES.md).
b64decode: Final = pybase64.b64decode

ERASED_KEYS_DDL = """CREATE TABLE IF NOT EXISTS mot_erased_keys (
    key_id TEXT PRIMARY KEY, erasure {bigint} NOT NULL)"""
# Erasures' receipts (no personal data) and the suppression list (keyed digests):
# adapters/stores/erasure.py. What the suppression drops is counted where it is dropped
# (import summaries, HTTP answers, /metrics), not kept here.
ERASURES_DDL = """CREATE TABLE IF NOT EXISTS mot_erasures (
    id {bigint} PRIMARY KEY, tenant TEXT NOT NULL, erased_at TEXT NOT NULL, reason TEXT NOT NULL,
    ids_with_moments INTEGER NOT NULL, ids_without_moments INTEGER NOT NULL,
    moments {bigint} NOT NULL, digest TEXT NOT NULL, lifted_at TEXT)"""
SUPPRESSED_DDL = """CREATE TABLE IF NOT EXISTS mot_suppressed (
    tenant TEXT NOT NULL, digest TEXT NOT NULL, erasure {bigint} NOT NULL,
    PRIMARY KEY (tenant, digest))"""


def box_field(path: Sequence[str]) -> str | None:
    """The name in a moment's box of the field at `path` of the moment; None if not personal."""
    if len(path) == 1 and path[0] in PERSONAL:
        return path[0]
    return "source_id" if tuple(path) == ("source", "id") else None


def _context(tenant: str, moment_id: str) -> bytes:
    return f"mot:event:{tenant}/{moment_id}".encode()  # (written out in `in_database`)


class Sealing:
    """Seals events' personal fields on the way in and opens them on the way out."""

    def __init__(self, backend: SqlBackend, keystore: Keystore) -> None:
        self.backend = backend
        self.keystore = keystore
        self._erased: dict[str, int] = {}  # key id -> the erasure that destroyed it
        self._erasures = -1  # how many erasures `_erased` knows of

    @staticmethod
    def create_tables(tx: Tx, backend: SqlBackend) -> None:
        for ddl in (ERASED_KEYS_DDL, ERASURES_DDL, SUPPRESSED_DDL):
            tx.execute(backend.ddl(ddl))

    # -- sealing ---------------------------------------------------------------------------
    def seal_states(self, tx: Tx, states: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Each (topic, state) with its personal fields sealed."""
        wanted: dict[str, set[str]] = {}
        for topic, state in states:
            _want(wanted, topic, state)
        keys = self._keys(tx, wanted)
        nonces = _Nonces(len(states))
        out = []
        for topic, state in states:
            if topic in LINK_TOPICS:
                out.append(self._sealed_link(state, keys[state["tenant"]]))
                continue
            tenant, customer = _owner(topic, state)
            key_id, aead = keys[tenant][customer]
            out.append(_sealed(topic, state, key_id, aead, nonces.next()))
        return out

    def sealed_rows(self, tx: Tx, events: Sequence[LedgerEvent], stream_ids: Sequence[Any]
                    ) -> list[StoredRow]:
        """The events' stored rows, their personal fields sealed: `seal_states` of their
        states, encoded. The record path's: a recorded moment (most of what an import or an
        ingest writes) goes from its two encoded parts (`domain/personal.py` `sealable`, made
        by the parse worker when there was one) to its row, only its personal part encrypted
        here; the row's bytes are those `seal_states` would give."""
        wanted: dict[str, set[str]] = {}
        items: list[Any] = []  # a recorded moment's (plain, personal, customer), or (topic, state)
        for event in events:
            if type(event) is MomentRecorded:
                moment = event.moment
                parts = moment.sealable if type(moment) is EncodedMoment else None
                if parts is None:
                    parts = (*sealable(moment), moment["customer_id"])
                items.append(parts)
                customers = wanted.get(event.tenant)
                if customers is None:
                    customers = wanted[event.tenant] = set()
                customers.add(parts[2])
                continue
            topic, state = to_state(event)
            items.append((topic, state))
            _want(wanted, topic, state)
        keys = self._keys(tx, wanted)
        # One read of the random source for the batch's nonces (a read costs more than a
        # seal); an event seals one box at most (a link's boxes take their own).
        random = os.urandom(NONCE_BYTES * len(items))
        at = 0
        # tenant -> `_context`'s bytes before the moment id
        contexts = {tenant: _context(tenant, "") for tenant in wanted}
        # A recorded moment's state as a bytearray: SQLite's module binds one as it is, where
        # it looks for an adapter of a bytes object first, and fails, raising and clearing an
        # AttributeError for every row (bench/NOTES.md); COPY takes either.
        dumps, join, encoded = orjson.dumps, bytearray().join, str.encode
        b64encode = pybase64.b64encode
        recorded_at, recorded_at_json = None, b""
        rows: list[StoredRow] = []
        for item, event, stream_id in zip(items, events, stream_ids, strict=True):
            nonce = random[at:at + NONCE_BYTES]
            at += NONCE_BYTES
            if type(event) is MomentRecorded:
                plain, personal, customer = item
                tenant = event.tenant
                key_id, aead = keys[tenant][customer]
                box = b64encode(nonce + aead.encrypt(nonce, personal,
                                                     contexts[tenant] + encoded(event.moment_id)))
                if event.recorded_at is not recorded_at:  # a batch's events share theirs
                    recorded_at = event.recorded_at
                    recorded_at_json = dumps(recorded_at)
                # The bytes orjson gives for {"moment": ..., "recorded_at": ..., "origin": ...},
                # written out: the plain moment's JSON object with the box as its last member,
                # "sealed" (a moment's JSON is never empty: it has its id and tenant).
                rows.append((stream_id, event.version, RECORDED, join((
                    b'{"moment":', plain[:-1], b',"sealed":{"k":"', encoded(key_id), b'","v":"',
                    box, b'"}},"recorded_at":', recorded_at_json, b',"origin":',
                    dumps(event.origin), b"}"))))
                continue
            topic, state = item
            if topic in LINK_TOPICS:
                sealed = self._sealed_link(state, keys[state["tenant"]])
            else:
                tenant, customer = _owner(topic, state)
                key_id, aead = keys[tenant][customer]
                sealed = _sealed(topic, state, key_id, aead, nonce)
            rows.append((stream_id, event.version, topic, dumps(sealed)))
        return rows

    def _keys(self, tx: Tx, wanted: Mapping[str, set[str]]
              ) -> dict[str, dict[str, tuple[str, Any]]]:
        """tenant -> customer id -> (key id, cipher) of each wanted customer, made if new."""
        return {tenant: self.keystore.keys_for(tx, tenant, customers)
                for tenant, customers in wanted.items()}

    def _sealed_link(self, state: dict[str, Any], keys: Mapping[str, tuple[str, Any]]
                     ) -> dict[str, Any]:
        """A link's or unlink's customer ids, each sealed under its own key, and their keyed
        digests (HMAC under the tenant's secret: an erasure finds the person's pairs by them,
        and they confirm no guess)."""
        state = dict(state)
        tenant, ids = state["tenant"], state.pop("customer_ids")
        boxes = []
        for i, cid in enumerate(ids):
            key_id, aead = keys[cid]
            nonce = os.urandom(NONCE_BYTES)
            box = nonce + aead.encrypt(nonce, cid.encode(), _link_context(tenant, state["link_id"], i))
            boxes.append({"k": key_id, "v": base64.b64encode(box).decode()})
        state["sealed_ids"] = boxes
        state["digests"] = [self.keystore.digest(tenant, cid) for cid in ids]
        return state

    def open_link_id(self, tx: Tx, tenant: str, link_id: str, index: int,
                     box: Mapping[str, str]) -> str | None:
        """One sealed customer id of a link; None when its key was erased."""
        self.refresh(tx)
        if box["k"] in self._erased:
            return None
        aead = self.keystore.ciphers([box["k"]], tx).get(box["k"])
        if aead is None:
            return None
        raw = base64.b64decode(box["v"])
        opened: bytes = aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:],
                                     _link_context(tenant, link_id, index))
        return opened.decode()

    def _opened_link(self, data: dict[str, Any], ciphers: Mapping[str, Any]) -> dict[str, Any]:
        data = dict(data)
        ids = []
        for i, box in enumerate(data.pop("sealed_ids")):
            # An erased key is erased even while its row is still in a keystore of its own
            # (MOT_KEYSTORE: deleted after the ledger's commit, adapters/stores/erasure.py).
            erasure = self._erased.get(box["k"])
            aead = ciphers.get(box["k"]) if erasure is None else None
            if aead is None:
                if erasure is None:
                    raise KeyProblem(f"the data key {box['k']} of a sealed link is missing and was "
                                     "not erased: is MOT_KEYSTORE set to this store's keystore?")
                # One pseudo id per erased key: a pair of two erased ids stays a pair of two.
                ids.append(f"{erased_customer(erasure)}:{box['k'][:8]}")
                continue
            raw = base64.b64decode(box["v"])
            try:
                ids.append(aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _link_context(
                    data["tenant"], data["link_id"], i)).decode())
            except Exception:
                raise KeyProblem(f"a sealed link {data['link_id']} does not open with its key: "
                                 "a tampered store") from None
        data.pop("digests", None)
        data["customer_ids"] = ids
        return data

    # -- opening ---------------------------------------------------------------------------
    def refresh(self, tx: Tx) -> None:
        """Learn of erasures made since (by any process): their keys are gone for good."""
        count = int(tx.scalar("SELECT COUNT(*) FROM mot_erased_keys") or 0)
        if count != self._erasures:
            self._erased = {str(k): int(e) for k, e in
                            tx.query("SELECT key_id, erasure FROM mot_erased_keys")}
            self._erasures = count
            self.keystore.forget()

    def open_states(self, tx: Tx | None, states: Iterable[tuple[str, bytes | bytearray]]
                    ) -> list[dict[str, Any]]:
        """Each stored (topic, state) decoded, its personal fields opened."""
        decoded = [(topic, orjson.loads(state)) for topic, state in states]
        boxes = {box[0] for _, data in decoded for box in (_box(data),) if box is not None}
        boxes |= {box["k"] for topic, data in decoded if topic in LINK_TOPICS
                  for box in data.get("sealed_ids", ())}
        if not boxes:
            return [data for _, data in decoded]
        if tx is None:
            with self.backend.read() as read:
                self.refresh(read)
                ciphers = self.keystore.ciphers(boxes, read)
        else:
            self.refresh(tx)
            ciphers = self.keystore.ciphers(boxes, tx)
        return [self._opened(topic, data, ciphers) for topic, data in decoded]

    def opened_texts(self, tx: Tx, boxes: Sequence[tuple[str, str, str, str]]) -> list[str]:
        """The opened JSON text of each of moments' boxes, (tenant, moment id, key id, box)
        (its personal fields under "m"; an erased key's pseudo customer id): what a rebuild's
        in-database load cannot open itself (adapters/stores/moment_load.py), copied in for
        its statement to take the fields from, never decoded here."""
        if not boxes:
            return []
        self.refresh(tx)
        ciphers = self.keystore.ciphers({box[2] for box in boxes}, tx)
        erased = self._erased
        out = []
        for tenant, moment_id, key_id, text in boxes:  # `_personal`, written out: a box a row
            aead = None if key_id in erased else ciphers.get(key_id)
            if aead is None:
                personal = self._personal(tenant, moment_id, key_id, text, ciphers)
                out.append(orjson.dumps(personal).decode())
                continue
            out.append(_opened_box(aead, tenant, moment_id, text).decode())
        return out

    @contextmanager
    def in_database(self) -> Iterator[str | None]:
        """The name of an SQL function that this thread's statements may call while the context
        lasts, `(tenant, moment id, key id, box)` -> the opened box's JSON (SQLite: a rebuild
        then loads its moments with one statement, `moment_load.load_statement`, no row
        passing through Python); None on a database that cannot call Python (PostgreSQL).

        Up to `keystore.CACHED_KEYS` stored keys, the cipher of every key is made first (a
        statement cannot read the keystore) and the function is UNSEAL_FUNCTION. Past that,
        with the keys in the store's own database, it is KEYED_UNSEAL_FUNCTION, which also
        takes the key's wrapped bytes (the statement reads them from `mot_keys` beside each
        event, in its own snapshot, unless KEPT_FUNCTION says the function holds the key's
        cipher) and unwraps the key for that box (the last RECENT_KEYS ciphers kept: a
        process's memory does not grow with the store's customers), and the moments
        still never pass through Python (a million sample moments hold 83,331 keys). With a
        keystore of its own (MOT_KEYSTORE) past the bound: None, opened in Python."""
        with self.backend.read() as tx:
            # The thread's connection, which outlives this transaction.
            connection = getattr(tx.cursor, "connection", None)
            if not isinstance(connection, sqlite3.Connection):
                yield None
                return
            self.refresh(tx)
            ciphers = self.keystore.all_ciphers(tx)
            if ciphers is None and self.keystore.separate:
                yield None  # more keys than a process keeps, none of them in this database
                return
            master = self.keystore.master(tx)
        erased = dict(self._erased)
        problems: list[KeyProblem] = []

        def unseal(tenant: str, moment_id: str, key_id: str | None, text: str) -> str | None:
            if key_id is None:
                return None
            try:
                erasure = erased.get(key_id)
                if erasure is not None:
                    return orjson.dumps({"m": {"customer_id": erased_customer(erasure)}}).decode()
                aead = ciphers.get(key_id) if ciphers is not None else None
                if aead is None:
                    raise KeyProblem(_missing_key(key_id))
                return _opened_box(aead, tenant, moment_id, text).decode()
            except KeyProblem as problem:  # SQLite's error would not say which
                problems.append(problem)
                raise

        # Written out, a call a moment: the key unwrapped (`crypto.unwrap_data_key`), then the
        # box opened (`_opened_box`).
        unwrap = AESGCM(master).decrypt
        # The ciphers of the keys unwrapped last, least recent first: a customer's moments lie
        # close together in the log, so most boxes find theirs here, and the statement reads
        # a key's row only for a key not kept here (KEPT_FUNCTION). Reading and unwrapping
        # every box's key cost a rebuild more CPU than UNSEAL_FUNCTION's ciphers made first;
        # bounded, so memory stays what UNSEAL_FUNCTION holds below CACHED_KEYS.
        recent: OrderedDict[str, AESGCM] = OrderedDict()

        def keyed(tenant: str, moment_id: str, key_id: str | None, text: str,
                  wrapped: bytes | None) -> str | None:
            if key_id is None:
                return None
            if key_id in erased:  # destroyed: as `unseal` says
                return unseal(tenant, moment_id, key_id, text)
            aead = recent.get(key_id)
            if aead is not None:
                recent.move_to_end(key_id)
            elif wrapped is None:  # missing: as `unseal` says
                return unseal(tenant, moment_id, key_id, text)
            else:
                try:
                    key = unwrap(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:],
                                 DATA_KEY_CONTEXT + key_id.encode())
                except Exception:
                    problems.append(KeyProblem(f"the data key {key_id} does not open with the"
                                               " master key: a tampered store"))
                    raise
                aead = recent[key_id] = AESGCM(key)
                if len(recent) > RECENT_KEYS:
                    recent.popitem(last=False)
            try:
                raw = b64decode(text)
                opened: bytes = aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:],
                                             f"mot:event:{tenant}/{moment_id}".encode())
            except Exception:
                problems.append(_not_opening(moment_id))
                raise
            return opened.decode()

        def kept(key_id: str | None) -> bool:
            return key_id in recent

        name, function, arguments = (UNSEAL_FUNCTION, unseal, 4) if ciphers is not None \
            else (KEYED_UNSEAL_FUNCTION, keyed, 5)
        connection.create_function(name, arguments, function)
        connection.create_function(KEPT_FUNCTION, 1, kept, deterministic=False)
        try:
            yield name
        except Exception:
            if problems:
                raise problems[0] from None
            raise
        finally:
            # Off the connection, which outlives the rebuild: the function holds every key's
            # cipher (or the master key) and the erasures as they were, and would open a box
            # erased since. (None in its place: a call is an error, and its keys are let go.)
            connection.create_function(name, arguments, None)
            connection.create_function(KEPT_FUNCTION, 1, None)

    def _opened(self, topic: str, data: dict[str, Any], ciphers: Mapping[str, Any]) -> dict[str, Any]:
        if topic in LINK_TOPICS:
            return self._opened_link(data, ciphers) if "sealed_ids" in data else data
        box = _box(data)
        if box is None:
            return data
        key_id, text = box
        if topic == RETRACTED:
            tenant, moment_id = data["tenant"], data["moment_id"]
        else:
            tenant, moment_id = data["moment"]["tenant"], data["moment"]["moment_id"]
        return _unsealed(topic, data, self._personal(tenant, moment_id, key_id, text, ciphers))

    def _personal(self, tenant: str, moment_id: str, key_id: str, text: str,
                  ciphers: Mapping[str, Any]) -> dict[str, Any]:
        erasure = self._erased.get(key_id)  # erased, even if its row is not deleted yet
        aead = ciphers.get(key_id) if erasure is None else None
        if aead is None:
            if erasure is None:
                raise KeyProblem(_missing_key(key_id))
            personal: dict[str, Any] = {"m": {"customer_id": erased_customer(erasure)},
                                        "s": {}}
        else:
            personal = orjson.loads(_opened_box(aead, tenant, moment_id, text))
        return personal


def _missing_key(key_id: str) -> str:
    return (f"the data key {key_id} of a sealed event is missing and was not erased: is "
            "MOT_KEYSTORE set to this store's keystore?")


def _opened_box(aead: Any, tenant: str, moment_id: str, text: str) -> bytes:
    """The plaintext of a moment's box (base64 of nonce + ciphertext); KeyProblem when it does
    not open with its key, bound to its tenant and moment id."""
    try:
        raw = b64decode(text)
        opened: bytes = aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:],
                                     _context(tenant, moment_id))
    except Exception:
        raise _not_opening(moment_id) from None
    return opened


def _not_opening(moment_id: str) -> KeyProblem:
    return KeyProblem(f"a sealed event of moment {moment_id} does not open with its key: "
                      "a tampered store")


def is_sealed(topic: str, data: dict[str, Any]) -> bool:
    """Whether a stored event's state already has its personal fields sealed."""
    if topic in LINK_TOPICS:
        return "sealed_ids" in data
    return _box(data) is not None


def _link_context(tenant: str, link_id: str, index: int) -> bytes:
    return f"mot:link:{tenant}/{link_id}/{index}".encode()


def _want(wanted: dict[str, set[str]], topic: str, state: dict[str, Any]) -> None:
    """Add the customer ids whose keys seal this state to `wanted` (tenant -> ids)."""
    if topic in LINK_TOPICS:
        wanted.setdefault(state["tenant"], set()).update(state["customer_ids"])
    else:
        tenant, customer = _owner(topic, state)
        wanted.setdefault(tenant, set()).add(customer)


def _owner(topic: str, state: dict[str, Any]) -> tuple[str, str]:
    """(tenant, customer id) whose key seals this state."""
    if topic == RETRACTED:
        return state["tenant"], state["customer_id"]
    moment = state["moment"]
    return moment["tenant"], moment["customer_id"]


def _box(data: dict[str, Any]) -> tuple[str, str] | None:
    box = data.get("sealed") if "sealed" in data else (
        data["moment"].get("sealed") if isinstance(data.get("moment"), dict) else None)
    return None if box is None else (box["k"], box["v"])


class _Nonces:
    """AES-GCM nonces, a fresh random one for each value sealed, read from the random
    source once for a batch (a read of the source costs more than the sealing)."""

    __slots__ = ("_at", "_random")

    def __init__(self, count: int) -> None:
        self._random = os.urandom(NONCE_BYTES * count)
        self._at = 0

    def next(self) -> bytes:
        at = self._at
        if at >= len(self._random):  # more than counted: a fresh one each
            return os.urandom(NONCE_BYTES)
        self._at = at + NONCE_BYTES
        return self._random[at:at + NONCE_BYTES]


def _sealed(topic: str, state: dict[str, Any], key_id: str, aead: Any,
            nonce: bytes) -> dict[str, Any]:
    state = dict(state)
    if topic == RETRACTED:
        personal: dict[str, Any] = {"m": {"customer_id": state.pop("customer_id")}}
        tenant, moment_id = state["tenant"], state["moment_id"]
        holder = state
    else:
        plain, moment_personal = split_personal(state["moment"])
        personal = {"m": moment_personal}
        if topic == AMENDED:
            set_plain, set_personal = split_personal(state["set"])
            if set_personal:
                personal["s"] = set_personal
                state["set"] = set_plain
        tenant, moment_id = plain["tenant"], plain["moment_id"]
        state["moment"] = holder = plain
    box = nonce + aead.encrypt(nonce, orjson.dumps(personal), _context(tenant, moment_id))
    holder["sealed"] = {"k": key_id, "v": pybase64.b64encode_as_string(box)}
    return state


def _unsealed(topic: str, data: dict[str, Any], personal: Mapping[str, Any]) -> dict[str, Any]:
    data = dict(data)
    if topic == RETRACTED:
        data.pop("sealed")
        data["customer_id"] = personal["m"]["customer_id"]
        return data
    plain = dict(data["moment"])
    plain.pop("sealed")
    data["moment"] = join_personal(plain, personal["m"])
    if topic == AMENDED and personal.get("s"):
        data["set"] = join_personal(data["set"], personal["s"])
    return data



