"""What the tests look at from outside mot: processes (run, and why one failed), and a rebuild's stages.

Read straight from /proc (Linux) and from the store's files and catalog, with no
mot code in between, so a test sees what a user's `ps` or `ls` would.
"""

from __future__ import annotations

import glob
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from mot.bootstrap import open_store

# How much of each stream a failure shows: the end, where a traceback or the last message is.
SHOWN = 6000


def _tail(stream: str | bytes | None) -> str:
    if stream is None:
        return "(none read)"
    text = stream.decode(errors="replace") if isinstance(stream, bytes) else stream
    if not text:
        return "(empty)"
    return text if len(text) <= SHOWN else f"[... {len(text) - SHOWN} characters before]\n" + text[-SHOWN:]


def described(args: Any, returncode: int | None, stdout: str | bytes | None,
              stderr: str | bytes | None) -> str:
    """A process's command, exit status and both streams, for a failed test's report."""
    command = shlex.join(map(str, args)) if isinstance(args, (list, tuple)) else str(args)
    status = "still running (timed out)" if returncode is None else f"exit status {returncode}"
    return (f"$ {command}\n{status}\n--- stdout ---\n{_tail(stdout)}"
            f"\n--- stderr ---\n{_tail(stderr)}")


class ProcessFailed(AssertionError):
    """A process a test ran ended otherwise than the test expected; says how, in full."""


def run(args: Sequence[str | os.PathLike[str]], *, exits: int | tuple[int, ...] | None = 0,
        timeout: float = 300, **options: Any) -> subprocess.CompletedProcess[Any]:
    """`subprocess.run(args)` with both streams captured; unless it exits with one of `exits`
    (None: any), or outlives `timeout`, raise with its command, status, stdout and stderr:
    `check=True` shows neither stream, and an assertion on the status alone hides why."""
    options.setdefault("capture_output", "stdout" not in options and "stderr" not in options)
    try:
        done = subprocess.run(list(args), timeout=timeout, check=False, **options)
    except subprocess.TimeoutExpired as late:
        raise ProcessFailed(f"no end within {timeout} s\n"
                            + described(args, None, late.stdout, late.stderr)) from None
    expected = (exits,) if isinstance(exits, int) else exits
    if expected is not None and done.returncode not in expected:
        raise ProcessFailed(f"expected exit status {' or '.join(map(str, expected))}\n"
                            + described(args, done.returncode, done.stdout, done.stderr))
    return done


def timed_mot(args: Sequence[str | os.PathLike[str]], *, imports: Sequence[str] = (),
              **options: Any) -> tuple[subprocess.CompletedProcess[str], float]:
    """`mot ARGS` run (as `run` does) in a process of its own and timed inside it, from once
    `imports` (and mot's CLI) are loaded: a loaded machine's start-up alone can take longer
    than a test's bound (CI's: tens of seconds), which timing from outside counted. Returns the
    process, its stderr without the timing line, and the command's seconds."""
    script = ("import sys, time\n"
              + "".join(f"import {name}\n" for name in imports)
              + "from mot.cli.main import cli\n"
              "started = time.monotonic()\n"
              "try:\n"
              "    cli.main(sys.argv[1:], prog_name='mot')\n"
              "finally:\n"
              "    print(f'took {time.monotonic() - started}', file=sys.stderr)\n")
    done = run([sys.executable, "-c", script, *map(str, args)], text=True, **options)
    *said, took = done.stderr.rstrip("\n").split("\n")
    done.stderr = "\n".join(said) + "\n"
    return done, float(took.removeprefix("took "))


def finished(process: subprocess.Popen[Any], *, exits: int | tuple[int, ...] = 0,
             timeout: float = 300) -> tuple[Any, Any]:
    """Wait for a started process (its streams piped) and return (stdout, stderr); raise as
    `run` does unless it exits with one of `exits` within `timeout`."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise ProcessFailed(f"no end within {timeout} s\n"
                            + described(process.args, None, out, err)) from None
    expected = (exits,) if isinstance(exits, int) else exits
    if process.returncode not in expected:
        raise ProcessFailed(f"expected exit status {' or '.join(map(str, expected))}\n"
                            + described(process.args, process.returncode, out, err))
    return out, err


def children(pid: int) -> set[int]:
    """The processes `pid` started that run now."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as listing:
            return {int(child) for child in listing.read().split()}
    except FileNotFoundError:
        return set()


def running(pid: int) -> bool:
    """Whether a process runs (a zombie, dead but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def still_running(pids: set[int], within: float = 10) -> list[int]:
    """Those of `pids` that still run after waiting up to `within` seconds for them to end."""
    deadline = time.monotonic() + within
    while any(running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return sorted(pid for pid in pids if running(pid))


def stages_left(url: str) -> list[str]:
    """The rebuild stages the store holds: files beside a SQLite store, tables on PostgreSQL."""
    with open_store(url) as services:
        backend = services.backend
        if backend.kind == "sqlite":
            return glob.glob(glob.escape(backend.path) + ".stage-*")  # type: ignore[attr-defined]
        with backend.read() as tx:
            return [str(row[0]) for row in tx.query(
                "SELECT tablename FROM pg_tables WHERE schemaname = ?"
                " AND starts_with(tablename, 'mot_stage_')",
                (backend.schema,),  # type: ignore[attr-defined]
            )]
