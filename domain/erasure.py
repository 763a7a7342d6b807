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

ERASED_PREFIX: Final = "\ufdd0erased:"


def erased_customer(erasure: int) -> str:
    """The pseudo customer id of the moments erasure number `erasure` erased."""
    return f"{ERASED_PREFIX}{erasure}"


def is_erased_customer(customer_id: str) -> bool:
    return customer_id.startswith(ERASED_PREFIX)
