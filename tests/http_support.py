"""What the HTTP tests share: an API over a real store, with tokens of two tenants and scopes."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from fastapi.testclient import TestClient

from mot.adapters.http.app import create_app
from mot.adapters.http.ingest import Limits
from mot.adapters.http.webhooks import WebhookSettings
from mot.bootstrap import Services, open_store
from mot.service.targets import Targets

# name -> (tenant, scopes); "revoked" is revoked right after it is created.
TOKENS = {
    "acme": ("acme", "read,write"),
    "acme_read": ("acme", "read"),
    "acme_write": ("acme", "write"),
    "globex": ("globex", "read,write"),
    "revoked": ("acme", "read,write"),
}


@dataclass
class Api:
    client: TestClient
    services: Services
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}

    def post(self, name: str, body: bytes | str | list[Any], path: str = "/v1/moments",
             **kwargs: Any) -> Any:
        content = orjson.dumps(body) if isinstance(body, list) else body
        return self.client.post(path, content=content, headers={**self.auth(name),
                                                                **kwargs.pop("headers", {})},
                                **kwargs)

    def get(self, name: str, path: str, **params: Any) -> Any:
        return self.client.get(path, params=params, headers=self.auth(name))


@contextmanager
def api(url: str, *, max_body: int | None = None, limits: Limits | None = None,
        webhooks: WebhookSettings | None = None, targets: Targets | None = None) -> Iterator[Api]:
    services = open_store(url)
    try:
        access = services.access
        tokens: dict[str, str] = {}
        for name, (tenant, scopes) in TOKENS.items():
            stored, tokens[name] = access.create(tenant, scopes, label=name)
            if name == "revoked":
                access.revoke(stored.id)
        if limits is None and max_body is not None:
            limits = Limits(max_body=max_body)
        app = create_app(services, access=access, webhooks=webhooks, limits=limits,
                         targets=targets)
        with TestClient(app) as client:
            yield Api(client, services, tokens)
    finally:
        services.close()


def golden_lines(path: Path, tenant: str, *, corrections: bool = True) -> list[bytes]:
    """The golden moments of `tenant`, and (the golden file's are all acme's) its corrections."""
    lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    out = []
    for line in lines:
        data = orjson.loads(line)
        if data.get("type") in ("amend", "retract"):
            if corrections:
                out.append(line)
        elif data.get("tenant", "default") == tenant:
            out.append(line)
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(store: str, port: int, *options: str) -> subprocess.Popen[bytes]:
    """`mot serve` as a child process on loopback (no background projector), once it answers."""
    mot = Path(sys.executable).parent / "mot"
    proc = subprocess.Popen(
        [str(mot), "--store", store, "serve", "--port", str(port), "--no-project",
         "--no-access-log", "--log-level", "warning", *options],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"mot serve exited: {proc.stderr.read() if proc.stderr else ''!r}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("mot serve did not come up in 120 s")
