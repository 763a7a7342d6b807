"""A regular install (a wheel, as `pip install .` builds one), compiled and pure Python.

`make install` is editable; users and images install a wheel. Both builds of the wheel come
from a copy of the repository's tracked files, install into a folder of their own, and run
the golden fixture end to end from there: the compiled one must hold mypyc's modules (and
say so), the pure one none, and both must give the golden values.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from conftest import RECORD_KEYS
from process_support import run

from mot import native

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
NAMES = ("relationships", "reciprocity", "transitions", "amplifications", "teams", "listening")

pytestmark = pytest.mark.slow


def _source_copy(to: Path) -> Path:
    """The tracked files only: no venv, no build folder, no compiled module of the checkout."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    for name in listed.stdout.decode().split("\0"):
        if name and (ROOT / name).is_file():
            (to / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, to / name)
    return to


def _installed(tmp: Path, pure: bool) -> tuple[Path, list[str]]:
    """Build a wheel of a copy of the sources (no build isolation: this venv has setuptools
    and mypy, and the tests reach no index) and install it, without dependencies, into a
    folder of its own; returns the folder and the wheel's file names."""
    source = _source_copy(tmp / "src")
    env = {**os.environ, "MOT_PURE_PYTHON": "1" if pure else "0"}
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "-w", str(tmp / "dist"), str(source)], env=env, timeout=600)
    (wheel,) = (tmp / "dist").glob("mot_ledger-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    target = tmp / "site"
    run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--target", str(target), str(wheel)], timeout=300)
    return target, names


def _mot(target: Path, *args: str | Path) -> str:
    return _python(target, "-m", "mot", *args)


def _python(target: Path, *args: str | Path) -> str:
    # PYTHONPATH comes before site-packages, where this venv's editable mot is found.
    done = run([sys.executable, *map(str, args)], env={**os.environ, "PYTHONPATH": str(target)},
               cwd=target.parent, timeout=300)
    return str(done.stdout.decode())


def _golden(target: Path) -> dict[str, Any]:
    store = target.parent / "mot.db"
    _mot(target, "--store", store, "import", "--quiet", FIXTURES / "golden.jsonl")
    _mot(target, "--store", store, "project")
    return {name: json.loads(_mot(target, "--store", store, "query", name, "--format", "json"))
            for name in NAMES}


def _assert_golden(outputs: dict[str, Any]) -> None:
    expected = json.loads((FIXTURES / "golden.expected.json").read_text())
    for name in NAMES:
        by_key = {tuple(r[k] for k in RECORD_KEYS[name]): r for r in outputs[name]}
        for record in expected[name]:
            got = by_key[tuple(record[k] for k in RECORD_KEYS[name])]
            assert {k: got[k] for k in record} == record, name


def test_a_regular_install_runs_the_record_path_compiled(tmp_path: Path) -> None:
    target, names = _installed(tmp_path, pure=False)
    extensions = [n for n in names if n.endswith(".so")]
    # Each compiled module's shim and mypyc's shared library beside them, and the manifest
    # of the sources they were built from.
    assert len(extensions) == len(native.COMPILED) + 1, extensions
    assert "mot/native_sources.json" in names
    version = _mot(target, "--version")
    assert f"compiled with mypyc ({len(native.COMPILED)} of {len(native.COMPILED)} modules)" in version
    where = _python(target, "-c", "import mot.domain.messages as m; print(m.__file__)")
    assert where.startswith(str(target)) and where.strip().endswith(".so"), where
    _assert_golden(_golden(target))


def test_a_regular_install_without_a_compiler_is_pure_python_and_gives_the_same_values(
        tmp_path: Path) -> None:
    target, names = _installed(tmp_path, pure=True)
    assert [n for n in names if n.endswith(".so")] == []
    assert "pure Python" in _mot(target, "--version")
    _assert_golden(_golden(target))
