"""Store URLs as they may be shown: banners, errors, logs and status never print a password."""

from __future__ import annotations

import re

# scheme://user:password@host... -> scheme://user@host... (the last @ before the path ends
# the credentials: a password may itself hold an @).
_CREDENTIALS = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/?#@]*):[^/?#]*@")
# ...?password=secret&... in the query string (libpq accepts it there too).
_QUERY_PASSWORD = re.compile(r"(?P<key>[?&]password=)[^&#]*", re.IGNORECASE)


def redacted(url: str) -> str:
    """`url` without its password (in the user part or the query), else unchanged."""
    shown = _CREDENTIALS.sub(r"\g<scheme>\g<user>@", url, count=1)
    return _QUERY_PASSWORD.sub(r"\g<key>***", shown)
