"""mot.toml, the one configuration file: reading it and the error that names a bad key.

Each part of the file belongs to its use case, which checks its own keys: the
vendor mappings (`adapters/vendors/config.py`), `[webhooks]` (`mot serve`),
`[targets]` (`service/targets.py`), `[alerts]` (the alerts' configuration), and
per tenant `[tenants.NAME.targets]` / `[tenants.NAME.alerts]`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection
from difflib import get_close_matches
from pathlib import Path
from typing import Any, Final

DEFAULT_PATH: Final = "mot.toml"


class ConfigError(ValueError):
    """The configuration file cannot be used; the message names the file, the key and the fix."""


def read_toml(path: str | Path) -> dict[str, Any]:
    """A TOML file as a dict; ConfigError when it cannot be read or parsed (mot.toml)."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read ({error.strerror or error})") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML ({error})") from error


def did_you_mean(key: str, known: Collection[str]) -> str:
    """" (did you mean 'x'?)" when a known key is close to `key`, else ""."""
    close = get_close_matches(key, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
