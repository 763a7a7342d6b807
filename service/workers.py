"""Worker processes for the bulk paths (import, rebuild): results in order, a bounded number ahead.

Both bulk paths split their Python work the same way: worker processes do the
part that needs no writer (validating messages, folding customers), the main
process does the writes in order and saves its position with them, so a crash
still loses and repeats nothing. `OrderedPool.imap` keeps a few tasks in flight
and hands results back in the order the tasks came, so memory stays bounded
whatever the size of the input.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from itertools import islice
from typing import Any, Generic, TypeVar, cast

C = TypeVar("C")
R = TypeVar("R")
_END: Any = object()  # the end of a stream of tasks


class WorkerFailed(RuntimeError):
    """A worker process died mid-way (killed, out of memory)."""


class OrderedPool(Generic[R]):
    """Processes that run one function on a stream of tasks, results in task order."""

    def __init__(self, workers: int, failure: str,
                 initializer: Callable[..., None] | None = None,
                 initargs: tuple[Any, ...] = ()) -> None:
        self.workers = workers
        self.ahead = 2 * workers + 1  # enough that no worker waits for the main process
        self.failure = failure  # what WorkerFailed says, for the user
        # spawn, not fork: the parent has database connections and their threads open.
        self._executor = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker, initargs=(os.getpid(), initializer, initargs),
        )

    def start(self, warm: Callable[..., Any] = int, *args: Any) -> None:
        """Start the worker processes now rather than at the first task: their start-up
        (imports, the initializer, and `warm(*args)`, which imports the modules the tasks
        will need) then overlaps whatever this process does next."""
        for _ in range(self.workers):
            self._executor.submit(_run, warm, *args)

    def imap(self, fn: Callable[..., R], tasks: Iterable[tuple[C, tuple[Any, ...]] | None]
             ) -> Iterator[tuple[C, R]]:
        """For each (context, args) task: (context, fn(*args) run in a worker), in order.

        `context` stays in this process; only the arguments and the result cross. A task
        None says the source has nothing new yet (a stream polled without waiting): the
        results ready by then are handed back first, rather than waiting on the source.
        """
        return self._results(fn, iter(tasks), deque())

    def started(self, fn: Callable[..., R], tasks: Iterable[tuple[C, tuple[Any, ...]]]
                ) -> Iterator[tuple[C, R]]:
        """`imap`, its first tasks handed to the workers now rather than at the first `next`:
        they work while this process does something else before it wants their results."""
        source, pending = iter(tasks), deque[tuple[C, Future[R]]]()
        for context, args in islice(source, self.ahead):
            pending.append((context, self._executor.submit(_run, fn, *args)))
        return self._results(fn, source, pending)

    def _results(self, fn: Callable[..., R], source: Iterator[tuple[C, tuple[Any, ...]] | None],
                 pending: deque[tuple[C, Future[R]]]) -> Iterator[tuple[C, R]]:
        exhausted = False
        while True:
            while not exhausted and len(pending) < self.ahead:
                task = next(source, _END)
                if task is _END:
                    exhausted = True
                    break
                if task is None:
                    if pending:
                        break
                    continue
                context, args = task
                pending.append((context, self._executor.submit(_run, fn, *args)))
            if not pending:
                return
            context, future = pending.popleft()
            try:
                result = future.result()
            except BrokenProcessPool as error:
                raise WorkerFailed(self.failure) from error
            yield context, result

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> OrderedPool[R]:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


ORPHAN_CHECK_S = 0.5


_parent: int | None = None  # in a worker: the process that started it


def _start_worker(parent: int, initializer: Callable[..., None] | None,
                  initargs: tuple[Any, ...]) -> None:
    """In a new worker: watch the parent, then run the pool's own initializer."""
    global _parent
    _parent = parent
    # Ctrl-C reaches the whole process group: the parent handles it (it says what was
    # committed and shuts the pool down); a worker would only print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, daemon=True, name="mot-orphan-watch").start()
    if initializer is not None:
        initializer(*initargs)


def _run(fn: Callable[..., R], *args: Any) -> R:
    """A task, in a worker; none starts once the parent is gone (tasks it had queued
    would otherwise run before the watch notices, and leave what they make behind)."""
    _exit_if_orphaned()
    return fn(*args)


def _watch_parent() -> None:
    while True:
        _exit_if_orphaned()
        time.sleep(ORPHAN_CHECK_S)


def _exit_if_orphaned() -> None:
    # A parent killed with SIGKILL never tells its workers to stop, and they would wait
    # for tasks forever, holding the store's connections. Once it is gone, the worker is
    # handed to another process: what it was doing is scratch the next run redoes.
    if _parent is not None and os.getppid() != _parent:
        os._exit(70)


# glibc's mallopt parameter: how much more than asked the heap grows by, and keeps when trimmed.
M_TOP_PAD = -2
PARSE_HEAP_PAD = 16 << 20


def steady_heap(pad: int = PARSE_HEAP_PAD) -> None:
    """A worker's initializer: its heap grows by `pad` beyond what it asks for and keeps that
    much when trimmed. A parse worker's heap grows for each batch and glibc trims it back after
    (the default pad is 128 kB), so each batch touched fresh pages again: the kernel's faults and
    zeroing were half the worker's system time (bench/NOTES.md). Not glibc (no `mallopt`): as is."""
    import ctypes

    mallopt = _glibc("mallopt", (ctypes.c_int, ctypes.c_int))
    if mallopt is not None:
        mallopt(M_TOP_PAD, pad)


# glibc's mallopt parameter: the most heaps (arenas) the threads of the process allocate from.
M_ARENA_MAX = -8
SERVER_ARENAS = 2


def few_arenas(count: int = SERVER_ARENAS) -> None:
    """Threads that start after this share at most `count` glibc heaps. `mot serve` records
    batches on a pool of threads, and glibc gives each thread a heap of its own (up to 8 a
    CPU) whose freed memory stays with it, so the process's resident memory grew with the
    moments served while what it used did not (bench/scaling_notes.toml, "HTTP ingest" rss).
    An explicit MALLOC_ARENA_MAX in the environment is left as set. Not glibc: does nothing."""
    import ctypes

    if "MALLOC_ARENA_MAX" in os.environ:
        return
    mallopt = _glibc("mallopt", (ctypes.c_int, ctypes.c_int))
    if mallopt is not None:
        mallopt(M_ARENA_MAX, count)


class HeapTrim:
    """Hands the free pages inside glibc's heaps back to the kernel (`malloc_trim(0)`) once
    `every` messages were recorded since the last time; safe from any thread.

    A long-running ingest frees most of what each batch allocated, but glibc keeps freed
    memory inside the heap (arena) it came from and gives back only what is free at a heap's
    top, so the free space held grew with the messages recorded while the memory in use did
    not: `mot kafka ingest` into PostgreSQL, 100,000 -> 1,000,000 messages, in use 25 -> 18 MB,
    free but resident 9 -> 37 MB (bench/scaling_notes.toml, "mot kafka ingest" rss). Trimming
    walks every arena's free chunks and releases their whole pages: a few ms of CPU per
    `every` messages (a transaction's worth). Not glibc: does nothing."""

    def __init__(self, every: int) -> None:
        self.every = every
        self._since = 0
        self._lock = threading.Lock()
        self._trim = _malloc_trim()

    def recorded(self, count: int) -> None:
        """`count` more messages were recorded (and their transaction closed)."""
        if self._trim is None:
            return
        with self._lock:
            self._since += count
            if self._since < self.every:
                return
            self._since = 0
        self._trim(0)


def trim_heap() -> None:
    """Hands the free pages inside glibc's heaps back to the kernel now (`malloc_trim(0)`;
    see `HeapTrim`). Not glibc: does nothing."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[..., int] | None:
    import ctypes

    return _glibc("malloc_trim", (ctypes.c_size_t,))


def _glibc(name: str, argtypes: tuple[Any, ...]) -> Callable[..., int] | None:
    """glibc's function `name` (returning an int), or None where the C library has none."""
    import ctypes

    try:
        function = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
    function.argtypes = argtypes
    function.restype = ctypes.c_int
    return cast(Callable[..., int], function)


def usable_cpus() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
