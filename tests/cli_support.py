"""Running `mot` in-process for the CLI tests: click's CliRunner, the exit status checked."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from mot.cli.main import cli


def mot(store: str, *args: str | Path, input: bytes | str | None = None,
        ok: bool = True, env: dict[str, str] | None = None) -> Result:
    """`mot --store STORE ARGS...`; with `ok`, fail the test unless it exits 0."""
    result = CliRunner().invoke(cli, ["--store", store, *map(str, args)], input=input, env=env)
    if ok:
        assert result.exit_code == 0, (result.output, result.exception)
    return result


def query(store: str, name: str, *extra: str) -> list[dict[str, Any]]:
    """`mot query NAME --format json EXTRA...` as records."""
    records = json.loads(mot(store, "query", name, "--format", "json", *extra).stdout)
    assert isinstance(records, list)
    return records


def default_sigint() -> None:
    """For `preexec_fn`: a shell starts background jobs with SIGINT ignored, and children
    inherit that; a command under a Ctrl-C test must get it as a terminal's foreground job does."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
