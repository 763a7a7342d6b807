"""The crypto-shredding building blocks (SPEC §6): sealed fields, wrapped data keys, the master key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stat
from pathlib import Path

import pytest

from mot.adapters.crypto import (
    NONCE_BYTES,
    KeyProblem,
    keyed_digest,
    load_master_key,
    new_key,
    seal,
    unseal,
    unwrap_data_key,
    wrap_data_key,
    wrap_data_keys,
)


def test_a_sealed_field_opens_with_its_key_and_context_only() -> None:
    key = new_key()
    sealed = seal(key, b"x:maria", b"moment:1:customer_id")
    assert b"x:maria" not in sealed
    assert unseal(key, sealed, b"moment:1:customer_id") == b"x:maria"
    assert seal(key, b"x:maria", b"moment:1:customer_id") != sealed  # a fresh nonce each time
    with pytest.raises(KeyProblem, match="wrong master key"):
        unseal(new_key(), sealed, b"moment:1:customer_id")
    with pytest.raises(KeyProblem):
        unseal(key, sealed, b"moment:2:customer_id")  # moved to another field: refused
    with pytest.raises(KeyProblem):
        unseal(key, sealed[:-1] + bytes([sealed[-1] ^ 1]), b"moment:1:customer_id")


def test_a_batch_of_data_keys_is_wrapped_each_under_its_own_nonce() -> None:
    master = new_key()
    keys = [(f"k{i}", new_key()) for i in range(3)]
    nonces = [bytes([i]) * NONCE_BYTES for i in range(3)]
    wrapped = wrap_data_keys(master, keys, nonces)
    assert [w[:NONCE_BYTES] for w in wrapped] == nonces
    assert [unwrap_data_key(master, w, key_id) for w, (key_id, _) in zip(wrapped, keys, strict=True)] == \
        [key for _, key in keys]
    with pytest.raises(KeyProblem):
        unwrap_data_key(master, wrapped[0], "k1")  # bound to its own id
    with pytest.raises(ValueError):
        wrap_data_keys(master, keys, nonces[:2])  # a nonce each, no fewer


def test_a_data_key_is_stored_wrapped_and_bound_to_its_id() -> None:
    master, data = new_key(), new_key()
    wrapped = wrap_data_key(master, data, "k1")
    assert data not in wrapped
    assert unwrap_data_key(master, wrapped, "k1") == data
    with pytest.raises(KeyProblem):
        unwrap_data_key(master, wrapped, "k2")
    with pytest.raises(KeyProblem):
        unwrap_data_key(new_key(), wrapped, "k1")


def test_the_master_key_comes_from_the_environment_as_hex_or_base64(tmp_path: Path) -> None:
    key = new_key()
    file = str(tmp_path / "mot.key")
    assert load_master_key(file, {"MOT_MASTER_KEY": key.hex()}, create=True).key == key
    b64 = base64.b64encode(key).decode()
    assert load_master_key(file, {"MOT_MASTER_KEY": b64}, create=False).key == key
    assert not os.path.exists(file)  # the environment's key writes no file
    with pytest.raises(KeyProblem, match="MOT_MASTER_KEY: expected a master key of 32 bytes"):
        load_master_key(file, {"MOT_MASTER_KEY": "not-a-key"}, create=True)


def test_a_key_file_is_created_once_private_and_then_reused(tmp_path: Path) -> None:
    file = str(tmp_path / "mot.key")
    with pytest.raises(KeyProblem, match="no master key: set MOT_MASTER_KEY or restore"):
        load_master_key(file, {}, create=False)
    first = load_master_key(file, {}, create=True)
    assert first.created and stat.S_IMODE(os.stat(file).st_mode) == 0o600
    again = load_master_key(file, {}, create=True)
    assert again.key == first.key and not again.created
    Path(file).write_text("garbage\n")
    with pytest.raises(KeyProblem, match=f"{file}: expected a master key"):
        load_master_key(file, {}, create=True)


def test_a_keyed_digest_is_hmac_sha256_and_confirms_no_guess_without_the_secret() -> None:
    secret = b"s" * 32
    assert keyed_digest(secret, "x:maria") == hmac.new(secret, b"x:maria", hashlib.sha256).hexdigest()
    assert keyed_digest(b"t" * 32, "x:maria") != keyed_digest(secret, "x:maria")
    assert keyed_digest(secret, "x:maria") != hashlib.sha256(b"x:maria").hexdigest()
