"""Parse workers keep a padded heap top (service/workers.py `steady_heap`): a batch's memory
freed at its end stays for the next batch instead of being trimmed and faulted in again."""

from __future__ import annotations

import os
import sys

from process_support import run

from mot.service.workers import PARSE_HEAP_PAD, SERVER_ARENAS

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
    done = run([sys.executable, "-c", PROBE, mode], text=True)
    return int(done.stdout)


def test_a_padded_heap_keeps_its_top_after_a_batch() -> None:
    assert kept_after_a_batch("padded") >= PARSE_HEAP_PAD
    # glibc's default trims the top back to its 128 kB pad
    assert kept_after_a_batch("default") < 1 << 20


TRIM_PROBE = """
import ctypes, sys
from mot.service.workers import HeapTrim
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)

def anon_kb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("RssAnon:"))

blocks = [libc.malloc(64 << 10) for _ in range(1024)]  # 64 MB, below mmap's threshold
for block in blocks:
    ctypes.memset(block, 1, 64 << 10)  # touched: resident
keep = libc.malloc(64 << 10)  # a live block above them: their space is not the heap's top
ctypes.memset(keep, 1, 64 << 10)
for block in blocks:
    libc.free(block)
freed = anon_kb()
heap = HeapTrim(every=1000)
heap.recorded(999)  # fewer than `every` messages since the last trim: nothing yet
waiting = anon_kb()
heap.recorded(1)
print(freed, waiting, anon_kb())
"""


def test_a_heap_trim_gives_freed_pages_below_live_memory_back_after_every_messages() -> None:
    done = run([sys.executable, "-c", TRIM_PROBE], text=True)
    freed, waiting, trimmed = (int(kb) for kb in done.stdout.split())
    # glibc keeps the 64 MB freed below a live block resident...
    assert freed - trimmed > 48 << 10
    # ...until `every` messages were recorded since the last trim
    assert waiting - trimmed > 48 << 10


def test_trim_heap_gives_freed_pages_below_live_memory_back_at_once() -> None:
    # A rebuild's fold worker trims before each range and after each stage (trim_heap).
    probe = TRIM_PROBE.replace("from mot.service.workers import HeapTrim",
                               "from mot.service.workers import trim_heap")
    probe = probe[:probe.index("heap = HeapTrim")] + "trim_heap()\nprint(freed, anon_kb())\n"
    done = run([sys.executable, "-c", probe], text=True)
    freed, trimmed = (int(kb) for kb in done.stdout.split())
    assert freed - trimmed > 48 << 10


ARENA_PROBE = """
import ctypes, os, re, sys, tempfile, threading
if sys.argv[1] == "few":
    from mot.service.workers import few_arenas
    few_arenas()
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
together = threading.Barrier(8)

def allocate():
    together.wait()  # all 8 alive at once, each allocating: each would get a heap of its own
    libc.malloc(1000)

threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
libc.fopen.restype, libc.fopen.argtypes = ctypes.c_void_p, (ctypes.c_char_p, ctypes.c_char_p)
libc.malloc_info.argtypes = (ctypes.c_int, ctypes.c_void_p)
libc.fclose.argtypes = (ctypes.c_void_p,)
with tempfile.TemporaryDirectory() as folder:
    path = os.path.join(folder, "info.xml")
    out = libc.fopen(path.encode(), b"w")
    libc.malloc_info(0, out)
    libc.fclose(out)
    print(len(re.findall("<heap nr=", open(path).read())))
"""


def heaps_after_eight_threads(mode: str, **env: str) -> int:
    """glibc's heaps (arenas) in a fresh process once 8 threads allocated at once."""
    environment = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | env
    done = run([sys.executable, "-c", ARENA_PROBE, mode], text=True, env=environment)
    return int(done.stdout)


def test_few_arenas_keeps_a_servers_threads_to_two_heaps() -> None:
    # glibc's default: a heap for each thread that allocates (up to 8 a CPU), and the main one
    assert heaps_after_eight_threads("default") > 4
    assert heaps_after_eight_threads("few") == SERVER_ARENAS == 2
    # an operator's MALLOC_ARENA_MAX stays as set
    assert heaps_after_eight_threads("few", MALLOC_ARENA_MAX="4") == 4
