"""Which fields of a moment are personal (SPEC §6), and a moment split along them.

A moment's `customer_id`, `actor`, `url`, `attributes` and `source.id` are personal:
a ledger that seals keeps them only encrypted under their customer's key
(adapters/stores/sealing.py), the rest of the moment in plain JSON. The split is
pure, so a parse worker process makes it while it still holds the moment's fields
(`sealable`), and the recording process only encrypts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

PERSONAL: Final[tuple[str, ...]] = ("customer_id", "actor", "url", "attributes")
"""A moment's personal fields at its top level; `source.id` is the fifth."""


def split_personal(moment: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the moment without its personal fields, those fields; `source.id` as `source_id`)."""
    plain = dict(moment)
    personal = {}
    for name in PERSONAL:
        if name in plain:
            personal[name] = plain.pop(name)
    source = plain.get("source")
    if type(source) is dict and "id" in source:
        source = source.copy()
        personal["source_id"] = source.pop("id")
        plain["source"] = source
    return plain, personal


def join_personal(plain: Mapping[str, Any], personal: Mapping[str, Any]) -> dict[str, Any]:
    """The moment `split_personal` split."""
    moment = dict(plain)
    for name in PERSONAL:
        if name in personal:
            moment[name] = personal[name]
    if "source_id" in personal:
        moment["source"] = {**moment.get("source", {}), "id": personal["source_id"]}
    return moment


def sealable(moment: Mapping[str, Any]) -> tuple[bytes, bytes]:
    """(the moment without its personal fields as JSON, those fields as the plaintext a
    moment's box seals: `{"m": fields}`)."""
    plain, personal = split_personal(moment)
    return orjson.dumps(plain), orjson.dumps({"m": personal})
