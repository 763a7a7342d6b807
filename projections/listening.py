"""When a tenant listens enough: its listening share (SPEC §3.4) at least half.

Not a rule of SPEC: the bar `mot story`, `mot report` and the analysts'
`listening_view` judge a share by, kept here once. Its own module, as
`lapsing.py`: the story applies it and needs none of the fold.
"""

from __future__ import annotations

from typing import Final

LISTENS_ENOUGH: Final = 0.5
"""The least listening share that listens enough."""


def listens_enough(share: float | None) -> bool | None:
    """Whether a listening share reaches the bar; None when there is no share (no moments
    that count either way)."""
    return None if share is None else share >= LISTENS_ENOUGH
