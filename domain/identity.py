"""Moment identity and moment references (SPEC §2, identity).

A moment's id is its `moment_id`, or when that is absent
`uuid5(NAMESPACE_URL, "mot:{tenant}:{source.system}:{source.id}")`, so that the
same CRM record sent twice is recorded once. References (`in_reply_to`,
`shares`) resolve by the same rule within the referring moment's tenant.
Ids are compared and ordered as canonical lowercase UUID strings.

Moment ids are scoped by tenant: the ledger keeps a moment's events in the
stream `moment_stream_id(tenant, moment_id)`, so the same id sent by two
tenants names two moments and neither can touch, block or see the other's.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any
from uuid import NAMESPACE_URL

sha1: Callable[[bytes], Any]
try:  # CPython's own SHA-1: for a name this short, OpenSSL's set-up and copy per digest
    import _sha1  # type: ignore[import-not-found]  # cost more than its hashing (bench/NOTES.md)

    sha1 = _sha1.sha1
except ImportError:  # pragma: no cover (a Python built without it)
    import hashlib

    sha1 = hashlib.sha1

_NAMESPACE = NAMESPACE_URL.bytes


# The hex digit of a UUID's variant nibble, by the digest's nibble there: its two low bits
# kept, its two high ones set to 10 (RFC 4122).
_VARIANT = dict(zip("0123456789abcdef", "89ab89ab89ab89ab", strict=True))


def uuid5_text(name: str) -> str:
    """`str(uuid5(NAMESPACE_URL, name))`, computed on the hex digest without building UUID
    objects or byte arrays: it runs twice for every moment imported (its id when derived
    from its source, and its stream's id)."""
    h = sha1(_NAMESPACE + name.encode()).hexdigest()
    # The version nibble (the 13th digit) is 5; the 17th digit carries the variant.
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


def uuid5_hex(name: str) -> str:
    """`uuid5_text(name)` without its hyphens (how SQLite stores stream ids)."""
    h = sha1(_NAMESPACE + name.encode()).hexdigest()
    return f"{h[:12]}5{h[13:16]}{_VARIANT[h[16]]}{h[17:32]}"


# Replies and shares name recent moments whose id was derived moments ago: a small
# cache turns most reference resolutions into a lookup.
@lru_cache(maxsize=65_536)
def derived_moment_id(tenant: str, system: str, source_id: str) -> str:
    """The id of a moment known only by where it came from.

    Equal to `str(uuid5(NAMESPACE_URL, f"mot:{tenant}:{system}:{source_id}"))`
    (a test holds it to that).
    """
    return uuid5_text(f"mot:{tenant}:{system}:{source_id}")


def moment_stream_id(tenant: str, moment_id: str) -> str:
    """The ledger stream that holds the moment `moment_id` of `tenant`.

    `str(uuid5(NAMESPACE_URL, f"mot:moment:{tenant}:{moment_id}"))`: no link's stream
    has it (theirs are named `mot:link:...`), and no tenant can choose the stream of
    another tenant's moment, whatever `moment_id` it sends.
    """
    return uuid5_text(f"mot:moment:{tenant}:{moment_id}")


def moment_stream_hex(tenant: str, moment_id: str) -> str:
    """`moment_stream_id` without its hyphens."""
    return uuid5_hex(f"mot:moment:{tenant}:{moment_id}")


MomentKey = tuple[str, str]
"""(tenant, moment_id): what names one moment."""
