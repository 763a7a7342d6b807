"""Which of mot's modules are compiled with mypyc, and whether a compiled one is current.

setup.py compiles COMPILED (the record path: validation, the ledger's decision, the
keystore) from the same .py sources; without mypyc or a C compiler, or with MOT_PURE_PYTHON=1,
they stay pure Python. At build time it writes MANIFEST beside the compiled code: each
module's source digest. In an editable checkout a module edited after its build would
otherwise run its old compiled code silently, since Python prefers an extension to a .py:
`stale()` names such modules (tests/conftest.py stops the tests on them, `mot --version` says
them). This module imports nothing of mot's, so setup.py reads it before anything is built.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import sys
from pathlib import Path

# Not adapters/stores/sealing.py: compiled, it doubled the peak memory of a SQLite rebuild's
# main process, which opens the sealed boxes in its SQL function (bench/NOTES.md, "mypyc and the
# rebuild's memory"); the cause is not found yet.
COMPILED = (
    "mot.domain.messages",
    "mot.domain.ledger",
    "mot.domain.events",
    "mot.domain.identity",
    "mot.domain.personal",
    "mot.domain.timefmt",
    "mot.adapters.stores.keystore",
    "mot.service.parsing",
)
GROUP = "mot.native"  # mypyc's shared library: mot/native__mypyc.<suffix>
MANIFEST = "native_sources.json"
PURE_ENV = "MOT_PURE_PYTHON"


def source_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def repository_source(module: str) -> str:
    """The repository path of a module of `mot` (pyproject.toml's package-dir maps each
    layer, mot.<layer>, to the folder <layer>/, one to one)."""
    return "/".join(module.split(".")[1:]) + ".py"


def _origin(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    return Path(spec.origin) if spec is not None and spec.origin else None


def _is_extension(path: Path) -> bool:
    return any(path.name.endswith(suffix) for suffix in importlib.machinery.EXTENSION_SUFFIXES)


def compiled() -> list[str]:
    """The modules of COMPILED that import as compiled code here."""
    return [module for module in COMPILED
            if (origin := _origin(module)) is not None and _is_extension(origin)]


def stale() -> list[str]:
    """Compiled modules whose .py beside them is not the source they were built from (or
    whose build recorded no source): their compiled code is what would run."""
    modules = compiled()
    if not modules:
        return []
    here = Path(__file__).resolve().parent
    try:
        built: dict[str, str] = json.loads((here / MANIFEST).read_text())
    except (OSError, ValueError):
        built = {}
    out = []
    for module in modules:
        origin = _origin(module)
        assert origin is not None
        source = origin.parent / (module.rsplit(".", 1)[1] + ".py")
        if not source.exists() or built.get(module) != source_digest(source):
            out.append(module)
    return out


def build() -> str:
    """How this mot runs its record path, for `mot --version`."""
    modules = compiled()
    if not modules:
        return "pure Python"
    old = stale()
    if old:
        return f"compiled with mypyc, STALE (rebuild with make install): {', '.join(old)}"
    return f"compiled with mypyc ({len(modules)} of {len(COMPILED)} modules)"


if __name__ == "__main__":  # the Makefile asks for the sources' paths in the repository
    sys.stdout.write(" ".join(repository_source(m) for m in COMPILED) + "\n")
