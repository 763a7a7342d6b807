"""Damaged input for the reading tests (tests/test_inputs.py, tests/test_import_command.py)."""

from __future__ import annotations

DAMAGES = ("truncated", "crc", "trailing")


def damaged(gzipped: bytes, damage: str) -> bytes:
    """A gzip cut in the middle, with a wrong CRC, or with garbage after its end."""
    if damage == "truncated":
        return gzipped[:len(gzipped) // 2]
    if damage == "crc":
        return gzipped[:-8] + bytes([gzipped[-8] ^ 0xFF]) + gzipped[-7:]
    return gzipped + b"garbage!"
