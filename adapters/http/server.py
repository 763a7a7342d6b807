"""Running the API under uvicorn, with the read timeout uvicorn lacks.

uvicorn closes idle keep-alive connections (`timeout_keep_alive`), but a connection
that sends nothing, or sends its request headers a byte now and then, is kept for
ever: enough of them use up the server's sockets and memory. The protocol here closes
a connection whose request headers have not all arrived `timeout` seconds after the
connection opened, or after the first byte of a following request. The body's own
deadline is the app's (bodies.read_limited answers 408).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

log = logging.getLogger("mot.http")


def header_deadline(timeout: float, base: type[asyncio.Protocol] = AutoHTTPProtocol) -> type[Any]:
    """uvicorn's HTTP protocol, closing connections whose request headers are too slow."""

    class HeaderDeadline(base):  # type: ignore[valid-type,misc]
        _deadline: asyncio.TimerHandle | None = None
        _waiting_for: object = None  # the request cycle that was current when the clock started

        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            self._start()

        def data_received(self, data: bytes) -> None:
            cycle = getattr(self, "cycle", None)
            if self._deadline is None and (cycle is None or cycle.response_complete):
                self._start()
            super().data_received(data)
            if self._deadline is not None and getattr(self, "cycle", None) is not self._waiting_for:
                self._stop()  # a new request's headers are complete

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop()
            super().connection_lost(exc)

        def _start(self) -> None:
            self._waiting_for = getattr(self, "cycle", None)
            self._deadline = asyncio.get_running_loop().call_later(timeout, self._expired)

        def _stop(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            log.info("closing a connection whose request headers did not arrive within %g s",
                     timeout)
            self.transport.close()

    return HeaderDeadline
