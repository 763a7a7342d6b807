"""Parse workers keep a padded heap top (service/workers.py `steady_heap`): a batch's memory
freed at its end stays for the next batch instead of being trimmed and faulted in again."""

from __future__ import annotations

import subprocess
import sys

from mot.service.workers import PARSE_HEAP_PAD

PROBE = """
import ctypes, sys
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                                 "usmblks", "fsmblks", "uordblks", "fordblks",
                                                 "keepcost")]
if sys.argv[1] == "padded":
    from mot.service.workers import steady_heap
    steady_heap()
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
blocks = [libc.malloc(64 << 10) for _ in range(512)]  # 32 MB of heap, as a batch's
for block in reversed(blocks):
    libc.free(block)
libc.mallinfo2.restype = MallInfo2
print(libc.mallinfo2().keepcost)
"""


def kept_after_a_batch(mode: str) -> int:
    """Bytes the heap's top keeps after 32 MB were taken and freed, in a fresh process."""
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                          check=True)
    return int(done.stdout)


def test_a_padded_heap_keeps_its_top_after_a_batch() -> None:
    assert kept_after_a_batch("padded") >= PARSE_HEAP_PAD
    # glibc's default trims the top back to its 128 kB pad
    assert kept_after_a_batch("default") < 1 << 20
