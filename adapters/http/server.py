"""Running the API under uvicorn: its listening socket, and the read timeout uvicorn lacks.

The socket is bound before anything else is done or printed, so that a busy or
forbidden address is one clear error and a non-zero exit (uvicorn binds only once it
has started, after our banner, and says `[Errno 98]`).

uvicorn closes idle keep-alive connections (`timeout_keep_alive`), but a connection
that sends nothing, or sends its request headers a byte now and then, is kept for
ever: enough of them use up the server's sockets and memory. The protocol here closes
a connection whose request headers have not all arrived `timeout` seconds after the
connection opened, or after the first byte of a following request. The body's own
deadline is the app's (bodies.read_limited answers 408).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
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


class BindError(Exception):
    """The address cannot be listened on; the message names it and why."""


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (port 0: any free one), for uvicorn to listen on."""
    shown = f"[{host}]" if ":" in host else host
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as error:
        raise BindError(f"cannot listen on {shown}:{port}: unknown host ({error.strerror})") \
            from None
    sock = socket.socket(family, kind, proto)
    try:
        # As uvicorn does: a restarted server can take the port of one that just stopped.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as error:
        sock.close()
        reason = error.strerror or str(error)
        if error.errno == errno.EADDRINUSE:
            reason = "the address is already in use (another server listens there; choose " \
                     "another --port, or stop it)"
        elif error.errno == errno.EACCES:
            reason = "permission denied (ports below 1024 need privileges; choose another --port)"
        raise BindError(f"cannot listen on http://{shown}:{port}: {reason}") from None
    return sock
