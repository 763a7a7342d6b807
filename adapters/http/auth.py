"""Bearer tokens on the API: who a request acts for, and whether it may read or write."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mot.adapters.http.errors import ApiError
from mot.service.access import AccessService, Principal

BEARER: Final = HTTPBearer(auto_error=False, description="A token from `mot token create`")

Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]


def authenticate(access: AccessService, credentials: HTTPAuthorizationCredentials | None,
                 scope: str) -> Principal:
    """The principal of a bearer token that has `scope`; 401 or 403 otherwise."""
    if credentials is None:
        raise ApiError(401, "missing bearer token: send Authorization: Bearer TOKEN",
                       code="missing_token", headers={"WWW-Authenticate": "Bearer"})
    principal = access.authenticate(credentials.credentials)
    if principal is None:
        raise ApiError(401, "unknown or revoked token", code="invalid_token",
                       headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    if not principal.can(scope):
        raise ApiError(403, f"this token has no {scope!r} scope", code="missing_scope")
    return principal
