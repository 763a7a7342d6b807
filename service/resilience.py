"""Long-running services outlive their store: retry with backoff while it is unreachable.

`mot project --follow`, `mot kafka ingest`, `mot kafka publish --follow`,
`mot alerts deliver --follow` and the server's background projector each run a
loop of rounds; a round that fails
because the store went away (PostgreSQL restarted, the backend terminated)
is retried after a growing pause instead of ending the process. Each outage
is said once when it starts and once when the store answers again. What the
adapters count as "unreachable" is theirs to say (`is_transient`); any other
failure still stops the service. A round is a transaction or a batch of them
whose position is saved with them, so a retried round loses and repeats
nothing.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal, TypeVar

T = TypeVar("T")


class _Retried(enum.Enum):
    RETRIED = "retried"


# What `run_round` gives for a round that failed for want of the store and has waited its
# backoff: the caller goes round again.
RETRIED: Final = _Retried.RETRIED


@dataclass
class Retry:
    """Backoff for one service's rounds: `failed(error)` pauses and says whether to retry."""

    what: str  # the service, as the messages name it
    is_transient: Callable[[BaseException], bool]
    say: Callable[[str], None]
    first_s: float = 0.5
    max_s: float = 30.0
    sleep: Callable[[float], object] = time.sleep  # or an Event's wait, to stop sooner
    clock: Callable[[], float] = time.monotonic
    outages: int = 0
    _since: float | None = field(default=None, init=False)
    _delay: float = field(default=0.0, init=False)

    def failed(self, error: BaseException) -> bool:
        """After a failed round: False when the error is not the store being unreachable
        (the caller re-raises it); otherwise wait (longer each time) and return True."""
        if not self.is_transient(error):
            return False
        if self._since is None:
            self._since = self.clock()
            self._delay = self.first_s
            self.outages += 1
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            self.say(f"{self.what}: the store is unreachable ({first_line}); retrying with backoff")
        self.sleep(self._delay)
        self._delay = min(self._delay * 2, self.max_s)
        return True

    def succeeded(self) -> None:
        """After a round that worked: say so once if the store had been unreachable."""
        if self._since is not None:
            self.say(f"{self.what}: the store answers again after {self.clock() - self._since:.1f} s; "
                     "continuing")
            self._since = None


def run_round(retry: Retry | None, work: Callable[[], T]) -> T | Literal[_Retried.RETRIED]:
    """One round of a service's loop: `work()`'s result, or RETRIED when the store was
    unreachable and `retry` has paused (said once per outage). Without `retry`, or for any
    other failure, the error propagates and stops the service."""
    try:
        result = work()
    except Exception as error:
        if retry is None or not retry.failed(error):
            raise
        return RETRIED
    if retry is not None:
        retry.succeeded()
    return result
