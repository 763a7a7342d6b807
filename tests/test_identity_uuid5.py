"""`uuid5_text` is `str(uuid.uuid5(NAMESPACE_URL, name))` for every name (it skips building the
UUID, as it runs twice for every moment imported): moment ids derived from a source, stream ids."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from mot.domain.identity import derived_moment_id, moment_stream_id, uuid5_text


@settings(max_examples=2000, deadline=None)
@given(st.text())
def test_uuid5_text_is_the_standard_uuid5(name: str) -> None:
    assert uuid5_text(name) == str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def test_every_variant_nibble_and_the_spec_names() -> None:
    seen = set()
    for n in range(400):
        name = f"mot:moment:acme:{n}"
        text = uuid5_text(name)
        assert text == str(uuid.uuid5(uuid.NAMESPACE_URL, name))
        seen.add(text[19])
    assert seen == set("89ab")
    assert derived_moment_id("acme", "hubspot", "e-1") == str(
        uuid.uuid5(uuid.NAMESPACE_URL, "mot:acme:hubspot:e-1"))
    assert moment_stream_id("acme", "m1") == str(uuid.uuid5(uuid.NAMESPACE_URL, "mot:moment:acme:m1"))
