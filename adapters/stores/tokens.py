"""API tokens on SQL: the `api_tokens` table (SQLite and PostgreSQL alike).

Only a token's SHA-256 is stored; the token itself is shown once, when created.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mot.adapters.stores.sql import SqlBackend
from mot.service.access import ApiToken

TOKENS_DDL = """
CREATE TABLE IF NOT EXISTS api_tokens (
    id {serial},
    tenant TEXT NOT NULL,
    scopes TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    label TEXT NOT NULL
)"""

COLUMNS = "id, tenant, scopes, hash, created_at, revoked_at, label"


class SqlTokenStore:
    """Implements the TokenStore port of `mot.service.access` on a SqlBackend."""

    def __init__(self, backend: SqlBackend) -> None:
        self.backend = backend
        with backend.write("schema") as tx:
            tx.execute(backend.ddl(TOKENS_DDL))

    def add(self, tenant: str, scopes: Sequence[str], digest: str, label: str, created_at: str) -> int:
        with self.backend.write("tokens") as tx:
            tx.execute(
                "INSERT INTO api_tokens (tenant, scopes, hash, created_at, label) VALUES (?,?,?,?,?)",
                (tenant, ",".join(scopes), digest, created_at, label),
            )
            return int(tx.scalar("SELECT id FROM api_tokens WHERE hash = ?", (digest,)))

    def all(self) -> list[ApiToken]:
        with self.backend.read() as tx:
            rows = tx.query(f"SELECT {COLUMNS} FROM api_tokens ORDER BY id")
        return [_token(row) for row in rows]

    def get(self, token_id: int) -> ApiToken | None:
        with self.backend.read() as tx:
            rows = tx.query(f"SELECT {COLUMNS} FROM api_tokens WHERE id = ?", (token_id,))
        return _token(rows[0]) if rows else None

    def by_digest(self, digest: str) -> ApiToken | None:
        with self.backend.read() as tx:
            rows = tx.query(f"SELECT {COLUMNS} FROM api_tokens WHERE hash = ?", (digest,))
        return _token(rows[0]) if rows else None

    def revoke(self, token_id: int, at: str) -> bool:
        """Mark a token revoked (the first revocation's time stays); False if there is no such token."""
        with self.backend.write("tokens") as tx:
            found = tx.scalar("SELECT COUNT(*) FROM api_tokens WHERE id = ?", (token_id,))
            tx.execute("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                       (at, token_id))
        return bool(found)


def _token(row: Sequence[Any]) -> ApiToken:
    token_id, tenant, scopes, digest, created_at, revoked_at, label = row
    return ApiToken(int(token_id), tenant, frozenset(s for s in scopes.split(",") if s), digest,
                    created_at, revoked_at, label)
