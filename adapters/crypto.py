"""Keys and sealed fields for crypto-shredding (SPEC §6).

Each customer id's personal fields are sealed with AES-GCM under a data key of
its own; data keys are stored only wrapped (sealed) by the master key, so that
destroying a wrapped data key makes the fields it sealed unreadable for good.
The master key comes from `MOT_MASTER_KEY` (64 hex digits or 44 base64
characters) or from a key file created on first use. A missing or wrong master
key is one clear error, never garbage: AES-GCM authenticates what it opens.

`cryptography`'s AESGCM is the AEAD: a well-kept binding of OpenSSL.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from hashlib import sha256
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES: Final = 32  # AES-256
NONCE_BYTES: Final = 12  # AES-GCM's standard nonce: random per seal, stored in front of the text
ENV_VAR: Final = "MOT_MASTER_KEY"
DATA_KEY_CONTEXT: Final = b"mot:data-key:"  # a wrapped data key is bound to it and its id


class KeyProblem(RuntimeError):
    """The master key is missing, malformed or not the one the store's keys were wrapped with."""


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def parse_master_key(text: str, where: str) -> bytes:
    """A master key written as 64 hex digits or as base64 of 32 bytes."""
    text = text.strip()
    try:
        key = bytes.fromhex(text) if len(text) == 2 * KEY_BYTES else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        key = b""
    if len(key) != KEY_BYTES:
        raise KeyProblem(f"{where}: expected a master key of {KEY_BYTES} bytes as 64 hex digits "
                         f"or base64, got {len(text)} characters that are neither")
    return key


@dataclass(frozen=True, slots=True)
class MasterKey:
    key: bytes
    created: bool  # True when this call wrote a new key file: tell the user to back it up


def load_master_key(key_file: str, environ: Mapping[str, str] = os.environ, *,
                    create: bool) -> MasterKey:
    """The master key: `MOT_MASTER_KEY` if set, else the key file, created when `create` allows.

    A new key file is written with mode 0600 and never overwritten (exclusive create), so two
    processes opening a new store at once end up with one key.
    """
    if environ.get(ENV_VAR):
        return MasterKey(parse_master_key(environ[ENV_VAR], ENV_VAR), created=False)
    try:
        with open(key_file, encoding="ascii") as f:
            return MasterKey(parse_master_key(f.read(), key_file), created=False)
    except FileNotFoundError:
        if not create:
            raise KeyProblem(f"no master key: set {ENV_VAR} or restore the key file {key_file}") from None
    key = new_key()
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return load_master_key(key_file, environ, create=False)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key.hex() + "\n")
    return MasterKey(key, created=True)


@lru_cache(maxsize=4)
def _aead(key: bytes) -> AESGCM:
    """The cipher of a key that seals many values (the master key wraps every data key):
    made once, not once a value."""
    return AESGCM(key)


def seal(key: bytes, plaintext: bytes, context: bytes) -> bytes:
    """`plaintext` sealed under `key`, bound to `context` (what it belongs to): nonce + ciphertext."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + _aead(key).encrypt(nonce, plaintext, context)


def unseal(key: bytes, sealed: bytes, context: bytes) -> bytes:
    """The plaintext of `seal(key, plaintext, context)`; KeyProblem when key or context differ."""
    try:
        return _aead(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], context)
    except (InvalidTag, ValueError):
        raise KeyProblem("a sealed value does not open with this key: wrong master key, or a "
                         "tampered store") from None


def wrap_data_key(master: bytes, data_key: bytes, key_id: str) -> bytes:
    """A data key as stored: sealed by the master key and bound to its id."""
    return wrap_data_keys(master, [(key_id, data_key)], [os.urandom(NONCE_BYTES)])[0]


def wrap_data_keys(master: bytes, keys: Sequence[tuple[str, bytes]], nonces: Sequence[bytes]
                   ) -> list[bytes]:
    """`wrap_data_key` of each (key id, data key), each with its own fresh random nonce of
    `nonces` (a batch's new keys take theirs from one read of the random source)."""
    encrypt = _aead(master).encrypt
    return [nonce + encrypt(nonce, data_key, DATA_KEY_CONTEXT + key_id.encode())
            for (key_id, data_key), nonce in zip(keys, nonces, strict=True)]


def unwrap_data_key(master: bytes, wrapped: bytes, key_id: str) -> bytes:
    return unseal(master, wrapped, DATA_KEY_CONTEXT + key_id.encode())


def keyed_digest(secret: bytes, value: str) -> str:
    """HMAC-SHA256 of a value under a tenant's secret, in hex: it confirms no guess without
    the secret (erasure receipts, the suppression list, key ids that name no customer).

    HMAC as RFC 2104 defines it, H(K ^ opad || H(K ^ ipad || value)), from the two hash
    states after each padded key block, made once per secret (`_hmac_states`) and copied
    for each value: `hmac.digest` sets up OpenSSL's MAC for every call, which cost an
    import making a new customer's key more than the key's own encryption (bench/NOTES.md).
    The same hex digits as `hmac.digest` (tests/test_sealing.py holds them to it)."""
    inner, outer = _hmac_states(secret)
    hashed = inner.copy()
    hashed.update(value.encode())
    mac = outer.copy()
    mac.update(hashed.digest())
    digest: str = mac.hexdigest()
    return digest


_BLOCK: Final = 64  # SHA-256's block, in bytes
_IPAD: Final = bytes(x ^ 0x36 for x in range(256))
_OPAD: Final = bytes(x ^ 0x5C for x in range(256))


@lru_cache(maxsize=64)
def _hmac_states(secret: bytes) -> tuple[Any, Any]:
    """SHA-256 after HMAC's inner and outer padded key blocks, for `keyed_digest`."""
    if len(secret) > _BLOCK:
        secret = sha256(secret).digest()
    block = secret.ljust(_BLOCK, b"\0")
    return sha256(block.translate(_IPAD)), sha256(block.translate(_OPAD))
