"""Request bodies: read within a size limit and a deadline, split a batch into messages.

A batch is a JSON array of messages, or NDJSON (one message per line; a single
JSON object is a batch of one). The content is what decides, not the
Content-Type, so `curl --data-binary @moments.jsonl` works as it is.

A batch is split in two passes so that a request's memory stays bounded by its
body, not by its number of messages: the first pass checks the whole body and
notes where each message starts and ends (two integers a message; a body with
too many messages is refused before anything is recorded, and malformed JSON
anywhere records nothing), the second decodes the messages a chunk at a time,
while each chunk is recorded.
"""

from __future__ import annotations

import codecs
import json
import re
from array import array
from collections.abc import AsyncIterator, Iterator
from typing import Any, Final

import anyio
import orjson

from mot.domain.messages import too_deep

DEFAULT_MAX_BODY: Final = 8 * 1024 * 1024
DEFAULT_MAX_ITEMS: Final = 100_000
DEFAULT_READ_TIMEOUT: Final = 30.0
_WHITESPACE: Final = re.compile(r"[ \t\n\r]*")


def _skip(text: str, at: int) -> int:
    """The index of the first character at or after `at` that is not JSON whitespace."""
    match = _WHITESPACE.match(text, at)
    assert match is not None  # (the pattern matches the empty string)
    return match.end()


class BodyTooLarge(Exception):
    """The body is over the limit (answered 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than the limit of {limit:,} bytes; "
                         "send smaller batches")
        self.limit = limit


class TooManyItems(Exception):
    """The batch holds more messages than a request may (answered 413); nothing was recorded."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the batch holds more than {limit:,} messages, the most one request "
                         "may carry (mot serve --max-items); nothing was recorded: send smaller "
                         "batches")
        self.limit = limit


class BodyTimeout(Exception):
    """The body did not arrive within the read timeout (answered 408)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the request body did not arrive within {seconds:g} s "
                         "(mot serve --read-timeout); nothing was recorded")
        self.seconds = seconds


class EncodedBody(Exception):
    """The body is compressed or otherwise encoded (Content-Encoding), which is not read here
    (answered 415 before the body is read): a gzip body was read as text and refused as 'not
    UTF-8 text (byte 0x8b at byte 2)', which did not say what to change."""

    field = "Content-Encoding"

    def __init__(self, encoding: str) -> None:
        super().__init__(f"Content-Encoding {encoding!r} is not read: send the body "
                         "uncompressed, without a Content-Encoding header (or 'identity'); "
                         "nothing was recorded")


def refuse_encoded(headers: Any) -> None:
    """EncodedBody when the request's Content-Encoding is anything but identity."""
    encoding = headers.get("content-encoding")
    if encoding is not None and encoding.strip().lower() not in ("", "identity"):
        raise EncodedBody(encoding)


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


async def read_limited(chunks: AsyncIterator[bytes], limit: int, declared: int | None,
                       timeout: float = DEFAULT_READ_TIMEOUT) -> bytes:
    """The whole body, refusing (before reading it) one that declares more than `limit`
    bytes, stopping as soon as a chunked one goes over, and giving up (BodyTimeout) when it
    has not all arrived `timeout` seconds after the first read: a client that sends a byte
    now and then would otherwise hold its request's memory and slot for ever."""
    if declared is not None and declared > limit:
        raise BodyTooLarge(limit)
    body = bytearray()
    with anyio.move_on_after(timeout) as deadline:
        async for chunk in chunks:
            if len(body) + len(chunk) > limit:
                raise BodyTooLarge(limit)
            body += chunk
    if deadline.cancelled_caught:
        raise BodyTimeout(timeout)
    return bytes(body)


class Batch:
    """A checked batch: its body and where each message is in it; decoded a chunk at a time.

    The first pass keeps the first `keep` messages, bytes and decoded value, so a batch of
    one chunk (the common case) is sliced and decoded once.
    """

    def __init__(self, body: bytes, spans: array[int], first: list[tuple[bytes, Any]]) -> None:
        self.body = body
        self.spans = spans  # start, end, start, end, ...
        self.first = first

    def __len__(self) -> int:
        return len(self.spans) // 2

    def chunks(self, size: int) -> Iterator[list[tuple[bytes, Any]]]:
        """The messages as (their bytes, their decoded JSON), `size` at a time, in order."""
        body, spans = self.body, self.spans
        for start in range(0, len(self), size):
            chunk = self.first[start:start + size]
            for at in range(2 * (start + len(chunk)), 2 * min(start + size, len(self)), 2):
                raw = body[spans[at]:spans[at + 1]]
                chunk.append((raw, orjson.loads(raw)))
            yield chunk


def without_bom(body: bytes) -> bytes:
    """The body without a leading UTF-8 byte order mark, which `mot import` reads past (a
    file saved by Notepad and sent with `curl --data-binary @file` was a 400), as spaces:
    the offsets of what follows stay where they were."""
    return b"   " + body[3:] if body.startswith(codecs.BOM_UTF8) else body


def split_batch(body: bytes, max_items: int = DEFAULT_MAX_ITEMS, keep: int = 1000) -> Batch:
    """Check a batch and find its messages; MalformedBody names what is wrong, TooManyItems
    says a body holds more than `max_items` messages (found before reading further). The
    decoded values of the first `keep` messages are kept."""
    body = without_bom(body)
    spans: array[int] = array("q")
    first: list[tuple[bytes, Any]] = []
    start = len(body) - len(body.lstrip())
    end = len(body.rstrip())
    if start == end:
        return Batch(body, spans, first)  # NDJSON of no lines: an empty batch, like `[]`
    if body[start:start + 1] == b"[":
        _array_spans(body, start, end, max_items, spans, first, keep)
        return Batch(body, spans, first)
    try:
        whole = body[start:end]
        first.append((whole, orjson.loads(whole)))
        spans.extend((start, end))  # one message
        return Batch(body, spans, first)
    except orjson.JSONDecodeError:
        pass
    position, number = 0, 0
    while position < len(body):
        newline = body.find(b"\n", position)
        stop = len(body) if newline < 0 else newline
        number += 1
        text = body[position:stop].strip()
        if text:
            left = position
            if len(text) != stop - position:  # (rare) spaces around the line
                left = body.index(text, position)
            _add(text, left, f"line {number}", spans, first, keep, max_items)
        position = stop + 1
    return Batch(body, spans, first)


def not_json(where: str, error: orjson.JSONDecodeError, raw: bytes | None = None
             ) -> MalformedBody:
    """The refusal of a body whose JSON orjson could not read; nesting past MAX_NESTING (the
    one limit of every form of a batch, a webhook's body included) and bytes that are not
    UTF-8 (orjson says 'str is not valid UTF-8: surrogates not allowed') are said in words."""
    if raw is not None and "UTF-8" in str(error.msg):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            return MalformedBody(f"{where}: not UTF-8 text (byte 0x{raw[bad.start]:02x} at byte"
                                 f" {bad.start + 1}); send UTF-8; nothing was recorded")
    if str(error.msg).startswith("depth limit exceeded"):
        return MalformedBody(f"{where}: {too_deep(error.pos)}; nothing was recorded")
    return MalformedBody(f"{where}: not valid JSON ({error}); nothing was recorded")


def _add(message: bytes, start: int, where: str, spans: array[int],
         first: list[tuple[bytes, Any]], keep: int, max_items: int) -> None:
    """Note a message found at `start` after checking its JSON (one of the first `keep`
    is kept whole); TooManyItems past `max_items`, MalformedBody naming `where`."""
    if len(spans) >= 2 * max_items:
        raise TooManyItems(max_items)
    try:
        value = orjson.loads(message)
    except orjson.JSONDecodeError as error:
        raise not_json(where, error, message) from None
    if len(first) < keep:
        first.append((message, value))
    spans.extend((start, start + len(message)))


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# The standard library's scanner finds where each element of an array ends without
# building the others (orjson only decodes whole documents); each element is then checked
# by orjson, as the NDJSON lines are, so both forms accept exactly the same messages.
_SCANNER: Final = json.JSONDecoder(parse_constant=_no_constants)


# A string (to the end of the text when it never closes: one pass, no backtracking), or a
# bracket.
_TOKENS: Final = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]')


def _value_end(text: str, at: int) -> int:
    """Where the array or object at `at` ends, by its brackets (strings skipped), without
    recursion; the end of the text when they never close (orjson then says what is wrong
    with the span, which it checks before anything of it is used)."""
    depth = 0
    for token in _TOKENS.finditer(text, at):
        bracket = token.group()
        if bracket in ("[", "{"):
            depth += 1
        elif bracket in ("]", "}"):
            depth -= 1
            if depth == 0:
                return token.end()
    return len(text)


def _array_spans(body: bytes, start: int, end: int, max_items: int, spans: array[int],
                 first: list[tuple[bytes, Any]], keep: int) -> None:
    try:
        text = body[start:end].decode()
    except UnicodeDecodeError as error:
        raise MalformedBody(f"not valid JSON (not UTF-8: {error})") from None
    ascii_only = len(text) == end - start
    offset = start  # byte offset of text[0], kept in step with `at` when the text is not ASCII
    at = _skip(text, 1)
    byte_at = offset + at
    if text[at:at + 1] == "]":
        if _skip(text, at + 1) != len(text):
            raise MalformedBody("not valid JSON (data after the closing ']')")
        return
    while True:
        try:
            _, stop = _SCANNER.raw_decode(text, at)
        except ValueError as error:
            raise MalformedBody(f"not valid JSON ({error}); nothing was recorded") from None
        except RecursionError:
            # The scanner recurses a level at a time and gives up short of MAX_NESTING (where
            # depends on the caller's stack: ~950 levels under the server), which refused the
            # whole batch for an item the NDJSON form of it accepts. Its end is found by
            # counting brackets instead, and the item is checked by orjson as any other:
            # one limit for both forms.
            stop = _value_end(text, at)
        element = body[offset + at:offset + stop] if ascii_only else text[at:stop].encode()
        byte_stop = byte_at + len(element)
        _add(element, byte_at, f"item {len(spans) // 2}", spans, first, keep, max_items)
        after = _skip(text, stop)
        separator = text[after:after + 1]
        if separator == "]":
            if _skip(text, after + 1) != len(text):
                raise MalformedBody("not valid JSON (data after the closing ']')")
            return
        if separator != ",":
            raise MalformedBody(f"not valid JSON (expected ',' or ']' at character {after}); "
                                "nothing was recorded")
        at = _skip(text, after + 1)
        byte_at = byte_stop + (at - stop)  # what lies between elements is ASCII
