"""Progress on standard error for long-running commands: counts, rate, and ETA when the size is known."""

from __future__ import annotations

import sys
from time import monotonic


class Progress:
    """Throttled one-line progress: rewritten in place on a terminal, a line every few seconds otherwise."""

    def __init__(self, label: str, *, quiet: bool = False) -> None:
        self.label = label
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.every = 0.5 if self.tty else 5.0
        self.started = monotonic()
        # The first line comes after `every` too: shown at once, it said "0 read ... 100%" for
        # a command that ended a moment later (above its summary, in a log).
        self.last = self.started
        self.shown = False

    def update(self, text: str, *, done: float | None = None, count: int | None = None,
               force: bool = False) -> None:
        """Show `text`; `done` is the fraction complete (for the ETA), `count` items so far (for the rate)."""
        if self.quiet:
            return
        now = monotonic()
        if not force and now - self.last < self.every:
            return
        self.last = now
        elapsed = max(now - self.started, 1e-9)
        parts = [f"{self.label}: {text}"]
        if count is not None:
            parts.append(f"{count / elapsed:,.0f}/s")
        if done is not None and 0 < done <= 1:
            remaining = elapsed * (1 - done) / done
            parts.append(f"{done:.0%}, ETA {_clock(remaining)}")
        line = " · ".join(parts)
        if self.tty:
            sys.stderr.write("\r\x1b[K" + line)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()
        self.shown = True

    def finish(self) -> None:
        if self.shown and self.tty and not self.quiet:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"

