"""Compiles mot's record-path modules with mypyc; everything else is in pyproject.toml.

The modules in `mot/native.py`'s COMPILED (validation, the ledger's decision, the
keystore) are compiled to C extensions from the same .py sources, which stay installed beside
them: with no mypyc or no C compiler, or with MOT_PURE_PYTHON=1, nothing is compiled and
the package is pure Python (`mot --version` says which). bench/NOTES.md ("mypyc on the record
path") has what it saves.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
import sysconfig
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "mot"))
from native import COMPILED, GROUP, MANIFEST, repository_source, source_digest  # noqa: E402  (mot/native.py, no imports)

sys.path.pop(0)

# mypyc names a module by its path: it must see the sources as the installed layout has them
# (domain/ -> mot/domain/, as pyproject.toml's package-dir maps them), a tree of links.
STAGE = HERE / "build" / "mypyc-src"
LAYERS = ("domain", "projections", "adapters", "service", "cli")


def _staged() -> list[str]:
    shutil.rmtree(STAGE, ignore_errors=True)
    (STAGE / "mot").mkdir(parents=True)
    for path in (HERE / "mot").glob("*.py"):
        shutil.copy2(path, STAGE / "mot" / path.name)
    for layer in LAYERS:
        (STAGE / "mot" / layer).symlink_to(HERE / layer, target_is_directory=True)
    return [str(STAGE / (module.replace(".", "/") + ".py")) for module in COMPILED]


def _why_pure() -> str | None:
    if os.environ.get("MOT_PURE_PYTHON") == "1":
        return "MOT_PURE_PYTHON=1"
    try:
        import mypyc.build  # noqa: F401
    except ImportError:
        return "mypyc is not installed"
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler})"
    return None


class BuildCompiled(build_ext):
    """build_ext that falls back to pure Python when the C build fails, and writes the manifest
    (each compiled module's source digest) that tells a compiled module from a stale one."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as error:  # a compiler that is there but cannot build: pure Python
            for ext in self.extensions:
                Path(self.get_ext_fullpath(ext.name)).unlink(missing_ok=True)
            print(f"mot: the compiled modules could not be built ({error}); installing pure Python",
                  file=sys.stderr)
            return
        manifest = Path(self.get_ext_fullpath(f"{GROUP}__mypyc")).parent / MANIFEST
        manifest.write_text(json.dumps(
            {module: source_digest(HERE / repository_source(module)) for module in COMPILED}, indent=1))
        # A regular build puts the manifest in build_lib; an editable one in the source tree.

    def get_outputs(self) -> list[str]:
        outputs: list[str] = super().get_outputs()
        return [*outputs, str(Path(self.get_ext_fullpath(f"{GROUP}__mypyc")).parent / MANIFEST)]


def _extensions() -> list[Any]:
    why = _why_pure()
    if why is not None:
        print(f"mot: pure Python ({why})", file=sys.stderr)
        return []
    from mypyc.build import mypycify

    # Its own mypy options, not pyproject.toml's [tool.mypy] (whose pydantic plugin an
    # isolated build environment lacks); a dependency absent there is typed Any.
    config = HERE / "build" / "mypyc" / "mypy.ini"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("[mypy]\npython_version = 3.11\nignore_missing_imports = True\n")
    said = io.StringIO()
    with contextlib.redirect_stdout(said):
        extensions = mypycify([f"--config-file={config}", *_staged()], opt_level="3",
                              group_name=GROUP, target_dir=str(HERE / "build" / "mypyc"))
    print(said.getvalue(), end="")
    # mypyc builds a generator expression it cannot compile as a generator as a list: a lazy
    # stream (a batch at a time from stdin or Kafka) would be read whole first.
    if "generator comprehension as list" in said.getvalue():
        raise SystemExit("mot: mypyc would make a generator expression a list (above): "
                         "write it as a generator function")
    return extensions


setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildCompiled})
