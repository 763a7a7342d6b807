"""Store URLs as they may be shown: banners, errors, logs and status never print a password."""

from __future__ import annotations

import re
from typing import TypedDict
from urllib.parse import parse_qs, quote, unquote, urlparse

# scheme://user:password@host... -> scheme://user@host... (the last @ before the path ends
# the credentials: a password may itself hold an @).
_CREDENTIALS = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/?#@]*):[^/?#]*@")
# ...?password=secret&... in the query string (libpq accepts it there too).
_QUERY_PASSWORD = re.compile(r"(?P<key>[?&]password=)[^&#]*", re.IGNORECASE)


def redacted(url: str) -> str:
    """`url` without its password (in the user part or the query), else unchanged."""
    shown = _CREDENTIALS.sub(r"\g<scheme>\g<user>@", url, count=1)
    return _QUERY_PASSWORD.sub(r"\g<key>***", shown)


class Server(TypedDict):
    """Where a PostgreSQL store's database is, and who connects to it."""

    dbname: str
    host: str
    port: int
    user: str
    password: str


def postgres_server(url: str) -> tuple[Server, str]:
    """A `postgresql://user@host:port/db[?schema=name]` store URL's server and schema."""
    parsed = urlparse(url)
    query = parse_qs(parsed.query)
    server = Server(
        dbname=unquote(parsed.path.lstrip("/")) or "postgres",
        host=parsed.hostname or "127.0.0.1",
        port=parsed.port or 5432,
        user=unquote(parsed.username or "postgres"),
        password=unquote(parsed.password or query.get("password", [""])[0]),
    )
    return server, query.get("schema", ["public"])[0]


def libpq_uri(server: Server, schema: str) -> str:
    """A libpq URI of the server with the store's schema first on the search path (for
    drivers other than the store's own: the ADBC reads of `mot export`)."""
    s = server
    return (f"postgresql://{quote(str(s['user']), safe='')}:{quote(str(s['password']), safe='')}"
            f"@{s['host']}:{s['port']}/{quote(str(s['dbname']), safe='')}"
            f"?options={quote(f'-csearch_path={schema}', safe='')}")
