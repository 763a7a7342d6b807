"""Running `mot` in-process for the CLI tests: click's CliRunner, the exit status checked."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from mot.cli.main import cli


def mot(store: str, *args: str | Path, input: bytes | str | None = None,
        ok: bool = True) -> Result:
    """`mot --store STORE ARGS...`; with `ok`, fail the test unless it exits 0."""
    result = CliRunner().invoke(cli, ["--store", store, *map(str, args)], input=input)
    if ok:
        assert result.exit_code == 0, (result.output, result.exception)
    return result
