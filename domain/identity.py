"""Moment identity and moment references (SPEC §2, identity).

A moment's id is its `moment_id`, or when that is absent
`uuid5(NAMESPACE_URL, "mot:{tenant}:{source.system}:{source.id}")`, so that the
same CRM record sent twice is recorded once. References (`in_reply_to`,
`shares`) resolve by the same rule within the referring moment's tenant.
Ids are compared and ordered as canonical lowercase UUID strings.
"""

from __future__ import annotations

from functools import lru_cache
from hashlib import sha1
from uuid import NAMESPACE_URL

_NAMESPACE = NAMESPACE_URL.bytes


# Replies and shares name recent moments whose id was derived moments ago: a small
# cache turns most reference resolutions into a lookup.
@lru_cache(maxsize=65_536)
def derived_moment_id(tenant: str, system: str, source_id: str) -> str:
    """The id of a moment known only by where it came from.

    Equal to `str(uuid5(NAMESPACE_URL, f"mot:{tenant}:{system}:{source_id}"))`
    (a test holds it to that), computed without building UUID objects because
    it runs once or more for every moment imported.
    """
    digest = bytearray(sha1(_NAMESPACE + f"mot:{tenant}:{system}:{source_id}".encode()).digest())
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest[:16].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
