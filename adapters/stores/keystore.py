"""The keystore: one data key per (tenant, customer id), stored only wrapped by the master key.

Crypto-shredding (SPEC §6) needs a key of each customer's that can be destroyed:
a key row names its key by a random id (what a sealed event carries, so it says
nothing of whose it is) and its customer by a keyed digest (HMAC under a secret
of the tenant's, derived from the master key: the digest confirms no guess
without it). Destroying a key is deleting its row; with SQLite's secure_delete
(on for the keystore's connections) the freed bytes are zeroed, and the WAL is
checkpointed and truncated after; PostgreSQL's key table is vacuumed (FULL: the
old file is unlinked) after the commit.

The keys live in the store's own database by default, so they commit with the
events they seal. `MOT_KEYSTORE=path` keeps them in a SQLite file of their own,
so that a backup or copy of the ledger alone holds nothing readable; keys are
then committed before the events that use them (a key without events is harmless).

A check value sealed by the master key is kept beside the keys: a wrong master key
is one clear error when the keystore is opened, never garbage later.
"""

from __future__ import annotations

import hmac
import os
import sys
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from hashlib import sha256
from typing import Any, Generic, TypeVar

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mot.adapters.crypto import (
    KEY_BYTES,
    NONCE_BYTES,
    KeyProblem,
    keyed_digest,
    load_master_key,
    new_key,
    seal,
    unseal,
    unwrap_data_key,
    wrap_data_keys,
)
from mot.adapters.stores.sql import SqlBackend, Tx, chunks

# Data keys a process keeps at most by key id (opening), and the most stored keys `all_ciphers`
# makes ciphers of at once. The caches hold each key's 32 bytes, not its cipher (an AESGCM
# holds an OpenSSL context of about 1.3 KB), the keys used last, in two generations of half
# the bound (`_Recent`): a key met again soon is found, one not met for a while is read again
# (one query a batch).
CACHED_KEYS = 20_000
# Customers' keys a process keeps at most (sealing), packed (`_CustomerKeys`: about 180 bytes
# a customer, its id's string, one bytes object of its key and key id, a dict slot), so many
# more customers than CACHED_KEYS stay under 30 MB whatever the store holds: a link seals
# the ids of two customers drawn from all of a tenant's, met again far apart (83,331
# customers in 1,000,000 sample moments), and each key not kept is read again, two random
# pages of mot_keys that the ledger's own pages have pushed out of the page cache.
CUSTOMER_KEYS = 160_000
# The customers' keys a serving process keeps (mot serve, `Keystore.serving`): it runs for as
# long as it is up, and its memory should not grow with the moments it has served. 16,000 (two
# generations of 8,000) is about what 100,000 sample moments meet (8,333 customers); with
# CUSTOMER_KEYS a server kept every customer of 1,000,000 (83,331, ~15 MB more: bench/NOTES.md).
SERVER_CUSTOMER_KEYS = 16_000
# Tenants' secrets a process keeps (one HMAC of the master key each to make again): a
# message names its tenant, so a long-running ingest meets as many as its senders name.
CACHED_TENANTS = 1_000
# Ciphers (AESGCM objects) of the keys used last, kept apart and fewer: making one costs more
# than the encryption of a moment's fields, and a customer's moments lie close together in an
# import's batches and a rebuild's ranges; a few thousand is a few MB whatever the store holds
# (about 1.4 KB of RSS each, OpenSSL's context: 8,000 are 11 MB). 8,000 rather than 4,000: at
# 1,000,000 sample moments (83,331 customers) a third of a batch's customers missed 4,000 and a
# cipher made costs about as much as the encryption (bench/NOTES.md); no more than the 8,333
# customers of 100,000, so a run of 100,000 meeting them all holds as many as one of 1,000,000.
HOT_CIPHERS = 8_000

KEYSTORE_ENV = "MOT_KEYSTORE"
KEY_FILE_ENV = "MOT_MASTER_KEY_FILE"

KEYS_DDL = """CREATE TABLE IF NOT EXISTS mot_keys (
    key_id {text} PRIMARY KEY, tenant {text} NOT NULL, customer {text} NOT NULL,
    wrapped {blob} NOT NULL)"""
KEYS_INDEX = "CREATE UNIQUE INDEX IF NOT EXISTS mot_keys_customer ON mot_keys (tenant, customer)"
KEYSTORE_DDL = "CREATE TABLE IF NOT EXISTS mot_keystore (name TEXT PRIMARY KEY, value {blob} NOT NULL)"
CHECK_CONTEXT = b"mot:keystore-check"
ID_BYTES = 16  # a key id: 32 hex digits, as uuid4().hex made them

K = TypeVar("K")
V = TypeVar("V")


class _Recent(Generic[K, V]):
    """A cache of the entries used last, at most `bound()` of them, in two generations: a new
    entry, or an old one found again, goes into the young; when the young holds half the bound
    it becomes the old and the old is let go. An LRU's behaviour at a dict's cost a lookup (no
    order kept a hit), and what a process holds stays bounded however many keys it meets."""

    __slots__ = ("_bound", "old", "young")

    def __init__(self, bound: Callable[[], int]) -> None:
        self._bound = bound  # read at each rotation: a test may lower the module's bound
        self.young: dict[K, V] = {}
        self.old: dict[K, V] = {}

    def get(self, key: K) -> V | None:
        found = self.young.get(key)
        if found is None:
            found = self.old.pop(key, None)
            if found is not None:
                self.put(key, found)
        return found

    def put(self, key: K, value: V) -> None:
        young = self.young
        young[key] = value
        if 2 * len(young) >= self._bound():
            self.old, self.young = young, {}

    def pop(self, key: K) -> None:
        self.young.pop(key, None)
        self.old.pop(key, None)

    def clear(self) -> None:
        self.young = {}
        self.old = {}

    def __len__(self) -> int:
        return len(self.young) + len(self.old)

    def __contains__(self, key: object) -> bool:
        return key in self.young or key in self.old


class _CustomerKeys:
    """The keys of the customers met last, by tenant and customer id, at most `CUSTOMER_KEYS`
    of them in two generations as `_Recent` keeps them; each is one bytes object, the key's 32
    bytes then its key id's (a tuple of a key id's string and the key's bytes, keyed by a
    (tenant, customer id) tuple, took about twice the memory)."""

    __slots__ = ("_bound", "_young_count", "old", "young")

    def __init__(self, bound: Callable[[], int]) -> None:
        self._bound = bound  # read at each put: a test may lower the module's bound
        self.young: dict[str, dict[str, bytes]] = {}  # tenant -> customer id -> packed key
        self.old: dict[str, dict[str, bytes]] = {}
        self._young_count = 0

    def get(self, tenant: str, customer_id: str) -> tuple[str, bytes] | None:
        found = self.young.get(tenant, _NONE).get(customer_id)
        if found is None:
            old = self.old.get(tenant)
            found = None if old is None else old.pop(customer_id, None)
            if found is None:
                return None
            self._put(tenant, customer_id, found)
        return found[KEY_BYTES:].decode(), found[:KEY_BYTES]

    def put(self, tenant: str, customer_id: str, found: tuple[str, bytes]) -> None:
        self._put(tenant, customer_id, found[1] + found[0].encode())

    def _put(self, tenant: str, customer_id: str, packed: bytes) -> None:
        keys = self.young.get(tenant)
        if keys is None:
            keys = self.young[tenant] = {}
        before = len(keys)
        keys[customer_id] = packed
        self._young_count += len(keys) - before
        if 2 * self._young_count >= self._bound():
            self.old, self.young, self._young_count = self.young, {}, 0

    def drop_keys(self, key_ids: Collection[str]) -> None:
        """Forget the customers whose keys are these (destroyed)."""
        ids = {k.encode() for k in key_ids}
        for generation in (self.young, self.old):
            for keys in generation.values():
                for customer_id in [c for c, packed in keys.items()
                                    if packed[KEY_BYTES:] in ids]:
                    del keys[customer_id]
        self._young_count = sum(len(keys) for keys in self.young.values())

    def clear(self) -> None:
        self.young, self.old, self._young_count = {}, {}, 0

    def __len__(self) -> int:
        return sum(len(keys) for g in (self.young, self.old) for keys in g.values())

    def __contains__(self, key: object) -> bool:
        """Whether a (tenant, customer id) is kept."""
        if not isinstance(key, tuple) or len(key) != 2:
            return False
        tenant, customer_id = key
        return any(customer_id in g.get(tenant, _NONE) for g in (self.young, self.old))


_NONE: Mapping[str, bytes] = {}  # an absent tenant's keys: found in none of them


def default_key_file(store_path: str | None) -> str:
    """Where the master key file is, when `MOT_MASTER_KEY` is not set."""
    explicit = os.environ.get(KEY_FILE_ENV)
    if explicit:
        return explicit
    if store_path:
        return store_path + ".key"
    return os.path.join(os.path.expanduser("~"), ".config", "mot", "master.key")


class Keystore:
    """Data keys by customer (sealing) and by key id (opening), cached per process."""

    def __init__(self, backend: SqlBackend, key_file: str | None, *, separate: bool) -> None:
        self.backend = backend
        self.separate = separate  # a database of its own (MOT_KEYSTORE): its own transactions
        self.key_file = key_file
        self._master: bytes | None = None
        self._secrets: dict[str, bytes] = {}
        # (tenant, customer id) -> key and key id (packed), key id -> key: raw 32-byte keys;
        # key id -> its cipher, fewer (HOT_CIPHERS).
        self._serving = False
        self._by_customer = _CustomerKeys(
            lambda: SERVER_CUSTOMER_KEYS if self._serving else CUSTOMER_KEYS)
        self._by_id: _Recent[str, bytes] = _Recent(lambda: CACHED_KEYS)
        self._ciphers: _Recent[str, AESGCM] = _Recent(lambda: HOT_CIPHERS)
        # Keys made inside a transaction not committed yet, trusted only within it; those of
        # an earlier transaction are kept once the keystore shows they were committed
        # (`_settle`), so an import does not read and unwrap them again after each commit.
        self._pending: dict[tuple[str, str], tuple[str, bytes]] = {}
        self._pending_tx: Tx | None = None
        self._mostly_new = True  # whether the last keys_for made most of its keys

    def serving(self) -> None:
        """This process serves for as long as it runs (mot serve): it keeps at most
        SERVER_CUSTOMER_KEYS customers' keys, not CUSTOMER_KEYS."""
        self._serving = True

    @staticmethod
    def create_tables(tx: Tx, backend: SqlBackend) -> None:
        tx.execute(backend.ddl(KEYS_DDL))
        tx.execute(KEYS_INDEX)
        tx.execute(backend.ddl(KEYSTORE_DDL))

    # -- the master key ------------------------------------------------------------------
    def master(self, tx: Tx | None = None) -> bytes:
        """The master key, checked against the keystore's check value (made on first use)."""
        if self._master is not None:
            return self._master
        if self.key_file is None:  # an in-memory store: a key for this process alone
            self._master = new_key()
            return self._master
        with self._tx(tx, write=False) as t:
            check = t.query("SELECT value FROM mot_keystore WHERE name = 'check'")
        # A store whose keys exist was made with a master key: a missing key file is one to
        # restore, never one to make anew (a new one could only fail the check below and
        # would lie beside the store looking like its key).
        if not check and os.path.dirname(self.key_file):
            os.makedirs(os.path.dirname(self.key_file), exist_ok=True)
        loaded = load_master_key(self.key_file, create=not check)
        if loaded.created and sys.stderr.isatty():
            # On a terminal only: a script's stderr may be parsed (and the README says it).
            print(f"mot: created the master key file {self.key_file} (mode 0600). Back it up "
                  f"apart from the store: without it the store's personal fields cannot be "
                  f"read (or set {'MOT_MASTER_KEY'} instead)", file=sys.stderr, flush=True)
        if check:
            try:
                unseal(loaded.key, bytes(check[0][0]), CHECK_CONTEXT)
            except KeyProblem:
                raise KeyProblem(
                    "the master key (from MOT_MASTER_KEY or " + self.key_file + ") is not the "
                    "one this store's keys were made with: set the right MOT_MASTER_KEY or "
                    "restore the right key file") from None
        else:
            with self._tx(tx, write=True) as t:
                t.execute("INSERT INTO mot_keystore (name, value) VALUES ('check', ?)"
                          " ON CONFLICT (name) DO NOTHING",
                          (seal(loaded.key, b"mot", CHECK_CONTEXT),))
        self._master = loaded.key
        return loaded.key

    def tenant_secret(self, tenant: str) -> bytes:
        """The tenant's secret for keyed digests (customer digests, receipts, suppression)."""
        secret = self._secrets.get(tenant)
        if secret is None:
            if len(self._secrets) >= CACHED_TENANTS:
                self._secrets = {}  # afresh: a tenant's secret is one HMAC to make again
            secret = hmac.new(self.master(), b"mot:tenant-secret:" + tenant.encode(),
                              sha256).digest()
            self._secrets[tenant] = secret
        return secret

    def digest(self, tenant: str, customer_id: str) -> str:
        return keyed_digest(self.tenant_secret(tenant), customer_id)

    # -- keys for sealing ----------------------------------------------------------------
    def keys_for(self, tx: Tx, tenant: str, customer_ids: Iterable[str]
                 ) -> dict[str, tuple[str, AESGCM]]:
        """(key id, cipher) of each customer id of `tenant`, made when it has none yet."""
        if self._pending_tx is not tx:
            self._settle(tx)
            self._pending_tx = tx
        out: dict[str, tuple[str, bytes]] = {}  # keys found whose cipher is not hot
        result: dict[str, tuple[str, AESGCM]] = {}
        missing: list[str] = []
        by_customer, pending = self._by_customer, self._pending
        young = by_customer.young.get(tenant, _NONE)  # most lookups end here: unpacked inline
        ciphers = self._ciphers
        hot = ciphers.young
        for cid in customer_ids:
            if cid in result or cid in out:
                continue
            packed = young.get(cid)
            if packed is not None:
                key_id = packed[KEY_BYTES:].decode()
                aead = hot.get(key_id)  # the usual case: key and cipher both hot, one step
                if aead is None:
                    out[cid] = (key_id, packed[:KEY_BYTES])
                else:
                    result[cid] = (key_id, aead)
                continue
            found = by_customer.get(tenant, cid) or pending.get((tenant, cid))
            if found is None:
                missing.append(cid)
            else:
                out[cid] = found
        if missing:
            missing.sort()  # made and read in one order, whatever order the ids came in
            master = self.master(tx)
            digests = {self.digest(tenant, cid): cid for cid in missing}
            with self._tx(tx, write=True) as t:
                # An import meets new customers in runs, a later import mostly known ones:
                # try first what the last call found (one statement in the usual case).
                if self._mostly_new:
                    made = self._make(t, master, tenant, digests, list(digests), out)
                    self._read(t, master, tenant, digests, [d for d in digests if d not in made],
                               out)
                else:
                    known = self._read(t, master, tenant, digests, list(digests), out)
                    made = self._make(t, master, tenant, digests,
                                      [d for d in digests if d not in known], out)
                    self._read(t, master, tenant, digests,
                               [d for d in digests if d not in known and d not in made], out)
            self._mostly_new = 2 * len(made) >= len(digests)
        for cid, (key_id, key) in out.items():
            aead = hot.get(key_id)
            if aead is None:
                aead = ciphers.get(key_id)
                if aead is None:
                    aead = AESGCM(key)
                    ciphers.put(key_id, aead)
            result[cid] = (key_id, aead)
        return result

    def _settle(self, tx: Tx) -> None:
        """Keep the keys made in an earlier transaction that the keystore holds now (it
        committed); forget the others (it rolled back: nothing they sealed was kept)."""
        pending, self._pending = self._pending, {}
        if not pending:
            return
        if self._pending_tx is not None and self._pending_tx.committed:
            # Committed: every key made in it is in the keystore, none to read back.
            for (tenant, cid), found in pending.items():
                self._by_customer.put(tenant, cid, found)
            return
        by_id = {key_id: (customer, found) for customer, found in pending.items()
                 for key_id in (found[0],)}
        with self._tx(tx, write=False) as t:
            for part in chunks(list(by_id), self.backend.max_params):
                for (key_id,) in t.query(
                        f"SELECT key_id FROM mot_keys WHERE key_id {self.backend.in_list(len(part))}",
                        self.backend.in_params(part)):
                    (tenant, cid), found = by_id[str(key_id)]
                    self._by_customer.put(tenant, cid, found)

    def _make(self, t: Tx, master: bytes, tenant: str, digests: Mapping[str, str],
              customers: Sequence[str], out: dict[str, tuple[str, bytes]]) -> set[str]:
        """New keys for these customers (digests) that have none; the digests given one."""
        # One read of the random source for the batch: each key's 16-byte id (random, so it
        # names no one), its 32 bytes and the nonce that wraps it.
        size = ID_BYTES + KEY_BYTES + NONCE_BYTES
        random = os.urandom(size * len(customers))
        made: dict[str, tuple[str, bytes]] = {}
        nonces: list[bytes] = []
        for customer, at in zip(customers, range(0, len(random), size), strict=True):
            made[customer] = (random[at:at + ID_BYTES].hex(),
                              random[at + ID_BYTES:at + ID_BYTES + KEY_BYTES])
            nonces.append(random[at + ID_BYTES + KEY_BYTES:at + size])
        wrapped = wrap_data_keys(master, list(made.values()), nonces)
        rows = [(key_id, tenant, customer, box)
                for (customer, (key_id, _)), box in zip(made.items(), wrapped, strict=True)]
        # A customer given a key meanwhile (another process) keeps that one: its row is not
        # inserted, and `_read` finds it.
        kept = self.backend.insert_new(t, "mot_keys", ("key_id", "tenant", "customer", "wrapped"),
                                       ("text", "text", "text", "bytea"), ("tenant", "customer"),
                                       rows)
        inserted = {customer for customer, (key_id, _) in made.items() if key_id in kept}
        for customer in inserted:
            cid = digests[customer]
            out[cid] = made[customer]
            if self.separate:  # committed already
                self._by_customer.put(tenant, cid, out[cid])
            else:
                self._pending[(tenant, cid)] = out[cid]
            self._by_id.put(out[cid][0], out[cid][1])
        return inserted

    def _read(self, t: Tx, master: bytes, tenant: str, digests: Mapping[str, str],
              customers: Sequence[str], out: dict[str, tuple[str, bytes]]) -> set[str]:
        """The stored keys of these customers (digests); the digests found."""
        found: set[str] = set()
        for part in chunks(list(customers), self.backend.max_params - 1):
            for customer, key_id, wrapped in t.query(
                    "SELECT customer, key_id, wrapped FROM mot_keys WHERE tenant = ?"
                    f" AND customer {self.backend.in_list(len(part))}",
                    (tenant, *self.backend.in_params(part))):
                cid = digests[str(customer)]
                key = unwrap_data_key(master, bytes(wrapped), str(key_id))
                out[cid] = (str(key_id), key)
                self._by_customer.put(tenant, cid, out[cid])
                self._by_id.put(str(key_id), key)
                found.add(str(customer))
        return found

    # -- keys for opening ----------------------------------------------------------------
    def ciphers(self, key_ids: Collection[str], tx: Tx | None = None) -> Mapping[str, AESGCM]:
        """The cipher of each of these key ids that still exists (a destroyed key is absent),
        made for this call (the caller lets them go with the mapping)."""
        by_id, ciphers = self._by_id, self._ciphers
        out: dict[str, AESGCM] = {}
        wanted: list[str] = []
        for k in key_ids:
            aead = ciphers.get(k)
            if aead is None:
                key = by_id.get(k)
                if key is None:
                    wanted.append(k)
                    continue
                aead = AESGCM(key)
                ciphers.put(k, aead)
            out[k] = aead
        if wanted:
            master = self.master(tx)
            with self._tx(tx, write=False) as t:
                for part in chunks(wanted, self.backend.max_params):
                    for key_id, wrapped in t.query(
                            f"SELECT key_id, wrapped FROM mot_keys WHERE key_id"
                            f" {self.backend.in_list(len(part))}", self.backend.in_params(part)):
                        key = unwrap_data_key(master, bytes(wrapped), str(key_id))
                        by_id.put(str(key_id), key)
                        out[str(key_id)] = aead = AESGCM(key)
                        ciphers.put(str(key_id), aead)
        return out

    def all_ciphers(self, tx: Tx | None = None) -> Mapping[str, AESGCM] | None:
        """The cipher of every stored key (what a statement that opens boxes may meet), made
        for this call from the keys kept like those `ciphers` uses (a rebuild asks again for
        each range: only new keys are unwrapped); None when the store holds more than
        CACHED_KEYS keys, more than a process keeps (the caller then opens its boxes in Python,
        in batches: `ciphers`)."""
        master = self.master(tx)
        with self._tx(tx, write=False) as t:
            if int(t.scalar("SELECT COUNT(*) FROM mot_keys") or 0) > CACHED_KEYS:
                return None
            rows = t.query("SELECT key_id, wrapped FROM mot_keys")
        by_id = self._by_id
        out: dict[str, AESGCM] = {}
        for key_id, wrapped in rows:
            key = by_id.get(str(key_id))
            if key is None:
                key = unwrap_data_key(master, bytes(wrapped), str(key_id))
                by_id.put(str(key_id), key)
            out[str(key_id)] = AESGCM(key)
        return out

    def forget(self) -> None:
        """Drop every cached key (another process may have destroyed some)."""
        self._by_customer.clear()
        self._by_id.clear()
        self._ciphers.clear()
        self._pending = {}
        self._pending_tx = None

    # -- destroying keys -------------------------------------------------------------------
    def key_ids_of(self, tx: Tx, tenant: str, customer_ids: Iterable[str]) -> dict[str, str]:
        """customer id -> its key id, for those that have a key."""
        digests = {self.digest(tenant, cid): cid for cid in customer_ids}
        out: dict[str, str] = {}
        with self._tx(tx, write=False) as t:
            for part in chunks(list(digests), self.backend.max_params - 1):
                for customer, key_id in t.query(
                        "SELECT customer, key_id FROM mot_keys WHERE tenant = ?"
                        f" AND customer {self.backend.in_list(len(part))}",
                        (tenant, *self.backend.in_params(part))):
                    out[digests[str(customer)]] = str(key_id)
        return out

    def existing(self, key_ids: Collection[str]) -> list[str]:
        """Those of these keys whose rows are still there."""
        out: list[str] = []
        with self._tx(None, write=False) as t:
            for part in chunks(list(key_ids), self.backend.max_params):
                out += [str(r[0]) for r in t.query(
                    f"SELECT key_id FROM mot_keys WHERE key_id {self.backend.in_list(len(part))}",
                    self.backend.in_params(part))]
        return out

    def destroy(self, tx: Tx | None, key_ids: Collection[str]) -> int:
        """Delete these keys' rows (in `tx` when the keys share the store's database);
        `scrub` afterwards, once committed, removes the bytes from the files."""
        if not key_ids:
            return 0
        with self._tx(tx, write=True) as t:
            # By the deletions' row counts (two COUNT(*) of the whole table cost more).
            deleted = 0
            for part in chunks(sorted(key_ids), self.backend.max_params):
                t.execute(f"DELETE FROM mot_keys WHERE key_id {self.backend.in_list(len(part))}",
                          self.backend.in_params(part))
                deleted += int(t.cursor.rowcount)
        for k in key_ids:
            self._by_id.pop(k)
            self._ciphers.pop(k)
        self._by_customer.drop_keys(key_ids)
        return deleted

    def _tx(self, tx: Tx | None, *, write: bool) -> Any:
        from contextlib import nullcontext

        if tx is not None and not self.separate:
            return nullcontext(tx)
        return self.backend.write("keys") if write else self.backend.read()


def open_keystore(store: SqlBackend, store_path: str | None,
                  environ: Mapping[str, str] = os.environ) -> Keystore:
    """The store's keystore: in its own database, or in the SQLite file `MOT_KEYSTORE` names."""
    separate_path = environ.get(KEYSTORE_ENV)
    if separate_path:
        from mot.adapters.stores.sqlite import SQLiteBackend

        backend: SqlBackend = SQLiteBackend(separate_path, create=True)
        with backend.write("keys") as tx:
            Keystore.create_tables(tx, backend)
        return Keystore(backend, default_key_file(separate_path), separate=True)
    in_memory = store_path == ":memory:"
    return Keystore(store, None if in_memory else default_key_file(store_path), separate=False)
