"""Erasure of a person (SPEC §6): what an erased moment is, and the receipt's facts.

An erased moment stays in the ledger without its personal fields and belongs to
no person. It still counts in every per-tenant sum, so it is still folded: under
a pseudo customer id of its erasure, `erased_customer(erasure)`, which no real
customer id can be (it starts with U+FDD0, a Unicode noncharacter) and whose rows
no per-customer projection keeps. One pseudo id per erasure keeps the erased
person's moments together, as they were folded before.
"""

from __future__ import annotations

from typing import Final

RESERVED_START: Final = "\ufdd0"
"""No customer id on the wire may begin with it: it starts the erased pseudo ids."""
ERASED_PREFIX: Final = f"{RESERVED_START}erased:"
RESERVED_PROBLEM: Final = ("must not begin with U+FDD0 (a Unicode noncharacter mot reserves for "
                           "the moments of erased persons)")


def erased_customer(erasure: int) -> str:
    """The pseudo customer id of the moments erasure number `erasure` erased."""
    return f"{ERASED_PREFIX}{erasure}"


def erasure_stream_id(tenant: str, erasure: int) -> str:
    """The ledger stream of erasure number `erasure` (its `PersonErased` event):
    `str(uuid5(NAMESPACE_URL, f"mot:erasure:{tenant}:{erasure}"))`."""
    from mot.domain.identity import uuid5_text

    return uuid5_text(f"mot:erasure:{tenant}:{erasure}")


def is_erased_customer(customer_id: str) -> bool:
    return customer_id.startswith(ERASED_PREFIX)
