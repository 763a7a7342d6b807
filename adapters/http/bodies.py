"""Request bodies: read within a size limit, split a batch into messages.

A batch is a JSON array of messages, or NDJSON (one message per line; a single
JSON object is a batch of one). The content is what decides, not the
Content-Type, so `curl --data-binary @moments.jsonl` works as it is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

DEFAULT_MAX_BODY = 8 * 1024 * 1024


class BodyTooLarge(Exception):
    """The body is over the limit (answered 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than the limit of {limit:,} bytes; "
                         "send smaller batches")
        self.limit = limit


class MalformedBody(ValueError):
    """The body is not a JSON array nor NDJSON (answered 400); the message names the problem."""


def declared_length(headers: Any) -> int | None:
    """The Content-Length header as a number, or None when absent or unreadable."""
    value = headers.get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


async def read_limited(chunks: AsyncIterator[bytes], limit: int, declared: int | None) -> bytes:
    """The whole body, refusing (before reading it) one that declares more than `limit`
    bytes, and stopping as soon as a chunked one goes over."""
    if declared is not None and declared > limit:
        raise BodyTooLarge(limit)
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        parts.append(chunk)
    return b"".join(parts)


def split_batch(body: bytes) -> list[tuple[bytes, Any]]:
    """The messages of a batch as (their bytes, their decoded JSON), in order."""
    stripped = body.strip()
    if not stripped:
        return []  # NDJSON of no lines: an empty batch, like `[]`
    if stripped[:1] == b"[":
        try:
            values = orjson.loads(stripped)
        except orjson.JSONDecodeError as error:
            raise MalformedBody(f"not valid JSON ({error})") from None
        if not isinstance(values, list):  # pragma: no cover - a `[` that parses is an array
            raise MalformedBody("expected a JSON array of messages")
        return [(orjson.dumps(value), value) for value in values]
    try:
        return [(stripped, orjson.loads(stripped))]  # one message
    except orjson.JSONDecodeError:
        pass
    items: list[tuple[bytes, Any]] = []
    for number, line in enumerate(body.split(b"\n"), start=1):
        text = line.strip()
        if not text:
            continue
        try:
            items.append((text, orjson.loads(text)))
        except orjson.JSONDecodeError as error:
            raise MalformedBody(f"line {number}: not valid JSON ({error}); nothing was recorded") \
                from None
    return items
