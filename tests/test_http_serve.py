"""`mot serve` as a user starts it: a busy port is one clear line and a non-zero exit, before
the banner and before any store is opened; `--port 0` serves on a free port the banner names;
the banner never shows the store URL's password."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from process_support import run

pytestmark = pytest.mark.slow

MOT = str(Path(sys.executable).parent / "mot")


def test_a_busy_port_fails_before_the_banner(tmp_path: Path) -> None:
    store = tmp_path / "x.db"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run([MOT, "--store", str(store), "serve", "--port", str(port)], timeout=120,
                   stdin=subprocess.DEVNULL, exits=1)
    assert done.stdout == b""
    assert done.stderr.decode().splitlines() == [
        f"Error: cannot listen on http://127.0.0.1:{port}: the address is already in use "
        "(another server listens there; choose another --port, or stop it)"]
    assert not store.exists()  # nothing opened, nothing created


def test_an_unknown_host_is_one_line(tmp_path: Path) -> None:
    done = run([MOT, "--store", str(tmp_path / "x.db"), "serve", "--host",
                "no-such-host.invalid", "--port", "0"], timeout=120, stdin=subprocess.DEVNULL, exits=1)
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "Error: cannot listen on no-such-host.invalid:0: unknown host"), lines


def test_port_zero_serves_on_the_port_the_banner_names(tmp_path: Path) -> None:
    proc = subprocess.Popen([MOT, "--store", str(tmp_path / "x.db"), "serve", "--port", "0",
                             "--no-project", "--log-level", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    try:
        assert proc.stderr is not None
        banner = proc.stderr.readline().decode()
        match = re.match(r"mot API on http://127\.0\.0\.1:(\d+) \(OpenAPI at /docs\); store ",
                         banner)
        assert match, banner
        port = int(match.group(1))
        assert port != 0
        deadline = time.monotonic() + 120
        while True:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "no answer on the banner's port"
                time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) in (0, -signal.SIGTERM)


def test_the_banner_hides_the_stores_password(pg_schema_url: str) -> None:
    # The local server trusts its clients, so the password is accepted and never checked.
    url = pg_schema_url.replace("postgresql://postgres@", "postgresql://postgres:s3cr%40t@", 1)
    assert "s3cr%40t" in url
    proc = subprocess.Popen([MOT, "--store", url, "serve", "--port", "0", "--no-project",
                             "--log-level", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    try:
        assert proc.stderr is not None
        banner = proc.stderr.readline().decode()
        assert banner.startswith("mot API on http://127.0.0.1:"), banner
        assert "s3cr" not in banner
        assert banner.rstrip().endswith("store " + url.replace(":s3cr%40t@", "@", 1)), banner
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) in (0, -signal.SIGTERM)
