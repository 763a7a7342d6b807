"""The temporary folders `mot verify` rebuilds the projections in (and `mot export --as-of`
sorts in), each marked with its owner.

A verify's scratch store holds the moments with their personal fields opened (copied from a
sealed ledger), and no erasure reaches it while it lives. A verify killed with SIGKILL cannot
remove it, so each folder holds a lock file its owner keeps an exclusive `flock` on for the
folder's lifetime: the kernel releases it when the owner dies, however it dies, so a folder
whose lock can be taken is a dead owner's, and `remove_abandoned` removes it (when a verify
starts, and after an erasure: SPEC 6). A folder is made under another name and renamed once
locked, so that no sweep sees a live folder before its lock is held; a folder without a lock
file (an older mot's verify, maybe running still) is left alone.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

PREFIX = "mot-verify-"
EXPORT_PREFIX = "mot-export-"  # an --as-of export's sort (scratch_sort.py)
# Every owned folder's prefix: a verify's scratch store, an export's sort (`owned`).
PREFIXES = (PREFIX, EXPORT_PREFIX)
_MAKING = ".mot-verify-making-"  # not PREFIX's: a folder not yet locked is never swept
_LOCK = "owner.lock"
_HELD: dict[Path, int] = {}  # each folder this process owns -> its lock file's descriptor


def make_owned(under: str | None = None, prefix: str = PREFIX) -> Path:
    """A new folder named `prefix`… (one of PREFIXES) in `under` (None: the system's temporary
    folder), locked by this process until `remove_owned`. Those in `under` that dead owners
    left go first. Where it is made is noted (`_note_place`) for the sweeps of processes
    whose temporary folder is another."""
    remove_abandoned(under)
    making = Path(tempfile.mkdtemp(prefix=_MAKING, dir=under))
    _note_place(making.parent)
    lock = -1
    try:
        lock = os.open(making / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)
        folder = making.with_name(prefix + making.name.removeprefix(_MAKING))
        making.rename(folder)  # the same folder (mkdtemp's unique name), now visible
    except BaseException:
        shutil.rmtree(making, ignore_errors=True)
        if lock >= 0:
            os.close(lock)
        raise
    _HELD[folder] = lock
    return folder


def remove_owned(folder: Path) -> None:
    """Remove a folder `make_owned` made, then let its lock go (in this order, so that no
    sweep takes the folder while it is being removed)."""
    shutil.rmtree(folder, ignore_errors=True)
    lock = _HELD.pop(folder, -1)
    if lock >= 0:
        os.close(lock)


@contextmanager
def owned(prefix: str) -> Iterator[Path]:
    """An owned folder (`make_owned`) in the system's temporary folder, removed at the end."""
    folder = make_owned(None, prefix)
    try:
        yield folder
    finally:
        remove_owned(folder)


def remove_abandoned(under: str | None = None, *, everywhere: bool = False) -> list[Path]:
    """Remove the folders of PREFIXES in `under` (None: the system's temporary folder) whose
    owner has ended without removing them; the removed ones. A live owner's folder stays.
    `everywhere` (an erasure): also in every folder this user's mot made one in (`PLACES`),
    whatever their TMPDIR or `mot verify --scratch` said."""
    where = Path(under if under is not None else tempfile.gettempdir())
    places = [where, *(p for p in _noted_places() if p != where)] if everywhere else [where]
    removed = []
    for place in places:
        with suppress(OSError):
            for folder in sorted(f for prefix in PREFIXES for f in place.glob(prefix + "*")):
                if folder.is_dir() and not folder.is_symlink() and _abandoned(folder):
                    removed.append(folder)
            for gone in place.glob(_REMOVING + "*"):
                if gone.is_dir() and not gone.is_symlink():
                    _remove(gone)
    return removed


def _places_file() -> Path | None:
    """Where this user's mot notes the folders it made owned folders in: in the home folder
    of the user's account (not $HOME, nor $TMPDIR: a cron job or a service may have others),
    ~/.local/state/mot/scratch-places; or the file `MOT_SCRATCH_PLACES` names, for a run
    kept apart from the account's other runs (a test session, a container): every process
    that should find the others' folders must then name the same file."""
    import pwd

    if named := os.environ.get(PLACES_ENV):
        return Path(named)
    try:
        return Path(pwd.getpwuid(os.getuid()).pw_dir) / PLACES
    except (KeyError, OSError):
        return None


PLACES = ".local/state/mot/scratch-places"
PLACES_ENV = "MOT_SCRATCH_PLACES"


def _note_place(place: Path) -> None:
    """Add `place` to the user's list, once (best effort: a read-only home folder is no error;
    the owner's own temporary folder is still swept)."""
    found = _places_file()
    if found is None:
        return
    line = os.fsencode(place.resolve()) + b"\n"
    with suppress(OSError):
        found.parent.mkdir(parents=True, exist_ok=True)
        with _locked(found) as descriptor:
            if line not in _lines(descriptor):
                os.lseek(descriptor, 0, os.SEEK_END)
                os.write(descriptor, line)


def _noted_places() -> list[Path]:
    """The places on the user's list that still exist; the others leave it."""
    found = _places_file()
    if found is None or not found.exists():
        return []
    try:
        with _locked(found) as descriptor:
            lines = list(dict.fromkeys(_lines(descriptor)))
            kept = [line for line in lines if os.path.isdir(line[:-1])]
            if kept != lines:
                os.ftruncate(descriptor, 0)
                os.pwrite(descriptor, b"".join(kept), 0)
    except OSError:
        return []
    return [Path(os.fsdecode(line[:-1])) for line in kept]


@contextmanager
def _locked(found: Path) -> Iterator[int]:
    descriptor = os.open(found, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield descriptor
    finally:
        os.close(descriptor)


def _lines(descriptor: int) -> list[bytes]:
    os.lseek(descriptor, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(descriptor, 1 << 16):
        chunks.append(chunk)
    return [line + b"\n" for line in b"".join(chunks).split(b"\n") if line]


def _abandoned(folder: Path) -> bool:
    """Whether `folder` was left by a dead owner; if so it is removed, under its lock."""
    try:
        lock = os.open(folder / _LOCK, os.O_RDWR | os.O_NOFOLLOW)
    except OSError:
        # No lock file: its owner is removing it, or it is an older mot's, which marked no
        # owner and may be running still (left alone); or another user's, not ours to judge.
        return False
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # its owner lives
        # Out of its owner's path first: a verify's fold workers outlive its SIGKILL a while
        # and write stage files there; a file made after rmtree listed the folder kept it,
        # without its lock file, which no sweep removes (an older mot's). Renamed, their next
        # file has no folder to go to (`_REMOVING`: what a stopped removal leaves is swept).
        gone = folder.with_name(_REMOVING + folder.name)
        try:
            folder.rename(gone)
        except OSError:
            return False
        _remove(gone)
        return True
    finally:
        os.close(lock)


_REMOVING = ".mot-removing-"  # a dead owner's folder being removed (no lock: always swept)


def _remove(gone: Path) -> None:
    """Remove a dead owner's renamed folder; a file its workers still had open and wrote
    into is unlinked with it."""
    for _ in range(20):
        shutil.rmtree(gone, ignore_errors=True)
        if not gone.exists():
            return
        import time

        time.sleep(0.05)
