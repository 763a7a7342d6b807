"""A real webhook receiver on 127.0.0.1 for the alert delivery tests: it verifies each POST's
signature, records what it got, and answers as a test scripts it (fail, time out, succeed)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from mot.projections.alerts import Alert, alert_id

S = 1_000_000


def make_alert(n: int, rule: str = "detractor", tenant: str = "acme", raised_us: int | None = None
               ) -> Alert:
    raised = raised_us if raised_us is not None else int(time.time() * S)
    moment = f"00000000-0000-4000-8000-{n:012d}"
    return Alert(alert_id(tenant, rule, moment), rule, tenant, f"hubspot:{n}",  # type: ignore[arg-type]
                 (f"hubspot:{n}",), moment, raised - 3 * 3600 * S, raised, "logistics", "dana",
                 "twitter", (("from", "engaged"), ("to", "detractor"),
                             ("trigger_moment_id", "00000000-0000-4000-8000-00000000ffff"),
                             ("trigger_function", "logistics"), ("trigger_actor", "dana"),
                             ("delay_seconds", 3 * 3600)))


Answer = Callable[[str, int], tuple[int, float]]
"""(alert id, how many times it came before) -> (status, seconds to wait before answering)"""


def always_ok(alert: str, seen: int) -> tuple[int, float]:
    return 200, 0.0


@dataclass
class Receiver:
    secret: str | None
    answer: Answer = always_ok
    port: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)  # each POST: headers and body
    in_flight: Counter[str] = field(default_factory=Counter)
    overlaps: list[str] = field(default_factory=list)  # alerts received twice at the same time
    bad_signatures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter(r["id"] for r in self.received)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            ident = self.headers.get("X-Mot-Alert-Id", "")
            timestamp = self.headers.get("X-Mot-Timestamp", "")
            with receiver.lock:
                seen = sum(1 for r in receiver.received if r["id"] == ident)
                if receiver.in_flight[ident]:
                    receiver.overlaps.append(ident)
                receiver.in_flight[ident] += 1
                if receiver.secret is not None:
                    expected = "sha256=" + hmac.new(receiver.secret.encode(),
                                                    timestamp.encode() + b"." + body,
                                                    hashlib.sha256).hexdigest()
                    if not hmac.compare_digest(expected, self.headers.get("X-Mot-Signature", "")):
                        receiver.bad_signatures += 1
                receiver.received.append({"id": ident, "timestamp": timestamp, "raw": body,
                                          "headers": dict(self.headers.items()),
                                          "body": json.loads(body), "at": time.time()})
            status, wait = receiver.answer(ident, seen)
            try:
                if wait:
                    time.sleep(wait)
                payload = b'{"ok": true}' if status < 300 else b'{"error": "scripted"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass  # the client gave up waiting (a timeout test)
            finally:
                with receiver.lock:
                    receiver.in_flight[ident] -= 1

    return Handler


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # several deliverers connect at once (the default, 5, refuses some)


@contextmanager
def receiving(secret: str | None = "s3cret", answer: Answer = always_ok) -> Iterator[Receiver]:
    receiver = Receiver(secret, answer)
    server = _Server(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def config_text(*hooks: str, extra: str = "") -> str:
    """mot.toml with these [[alerts.webhooks]] bodies."""
    return "".join(f"[[alerts.webhooks]]\n{hook}\n" for hook in hooks) + extra
