"""One shape for every error: RFC 9457 problem details, `application/problem+json`.

    {"type": "about:blank", "title": "Payload Too Large", "status": 413,
     "detail": "the batch holds more than 100,000 messages ...", "code": "too_many_items",
     "field": null, "errors": null}

`detail` says what went wrong and what to do, `code` is a stable word for programs,
`field` names the parameter or field at fault when there is one, and `errors` lists
each problem of a request that has several (a 422). FastAPI's own answers (its 422s,
routing's 404 and 405) are turned into the same shape here, so a client parses one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any, Final

import orjson
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from mot.adapters.http.bodies import (
    BodyTimeout,
    BodyTooLarge,
    EncodedBody,
    MalformedBody,
    TooManyItems,
)
from mot.adapters.http.ingest import ChunkConflict, Overloaded
from mot.adapters.http.models import Problem
from mot.adapters.http.patterns import meaning
from mot.adapters.http.tenancy import TenantLimited
from mot.domain.messages import in_our_words

log = logging.getLogger("mot.http")

MEDIA_TYPE: Final = "application/problem+json"
PROBLEM_REF: Final = {"$ref": "#/components/schemas/Problem"}

# The code of an error raised without one, by its status.
_CODES: Final = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 408: "request_timeout", 409: "conflict", 413: "too_large",
    415: "unsupported_encoding", 422: "invalid_parameter", 429: "too_many_requests",
    500: "internal_error", 503: "unavailable",
}

# What each status means on this API, for the OpenAPI schema.
_DESCRIPTIONS: Final = {
    400: "Malformed JSON, or an unknown query parameter; nothing was recorded",
    401: "No token, an unknown or revoked one, or a webhook whose signature does not verify",
    403: "The token lacks the scope, or names another tenant",
    404: "Not found in the token's tenant",
    408: "The body did not arrive within the read timeout; nothing was recorded",
    409: "The batch would have changed another tenant's moment; send it again",
    413: "The body is over the size limit, or holds more messages than a request may; "
         "nothing of it was recorded",
    415: "The body is compressed (Content-Encoding), which is not read: send it uncompressed; "
         "nothing was recorded",
    422: "A parameter is invalid: `errors` names each one and what was expected",
    429: "The token's tenant is over one of its own limits (`code`: rate_limited, "
         "tenant_memory, report_busy, report_rate; `detail` names the limit): retry after the "
         "Retry-After header's seconds; nothing was recorded",
    503: "The store is unreachable, or the server has no room for the body now: retry after "
         "the Retry-After header's seconds",
}


class ApiError(HTTPException):
    """An error answered as a problem: status, a stable code, what to do, the field at fault."""

    def __init__(self, status: int, detail: str, *, code: str | None = None,
                 field: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, detail, headers=headers)
        self.code = code or _CODES.get(status, "error")
        self.field = field


def problem(status: int, detail: str, *, code: str | None = None, field: str | None = None,
            errors: Sequence[dict[str, str]] | None = None,
            headers: Mapping[str, str] | None = None) -> Response:
    """The response of an error."""
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail,
            "code": code or _CODES.get(status, "error"), "field": field,
            "errors": None if errors is None else list(errors)}
    return Response(orjson.dumps(body), status_code=status, media_type=MEDIA_TYPE,
                    headers=headers)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of these error statuses, each a Problem."""
    return {status: {"description": _DESCRIPTIONS[status],
                     "content": {MEDIA_TYPE: {"schema": PROBLEM_REF}}} for status in statuses}


def schemas() -> dict[str, Any]:
    """The component schemas the problems refer to."""
    schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    definitions: dict[str, Any] = schema.pop("$defs", {})
    return {"Problem": schema, **definitions}


# The refusals of a request's body: status, code and headers (a refused body closes the
# connection, since the rest of it may still be on the way).
_REFUSALS: Final[dict[type[Exception], tuple[int, str, dict[str, str]]]] = {
    MalformedBody: (400, "malformed_json", {}),
    BodyTimeout: (408, "body_timeout", {"Connection": "close"}),
    BodyTooLarge: (413, "body_too_large", {"Connection": "close"}),
    EncodedBody: (415, "unsupported_encoding", {"Connection": "close"}),
    TooManyItems: (413, "too_many_items", {}),
    ChunkConflict: (409, "tenant_conflict", {}),
    Overloaded: (503, "overloaded", {}),
}


def _location(loc: Iterable[Any]) -> str:
    """`("query", "stage")` -> `stage`; `("body", "items", 0)` -> `body.items.0`."""
    parts = [str(part) for part in loc]
    if len(parts) > 1 and parts[0] in ("query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts)


def _validation_message(error: dict[str, Any]) -> str:
    """A 422's problem in mot's words, as the wire format's (pydantic's "Input should be ..."
    and "Extra inputs are not permitted" were answered as they came)."""
    message = str(error.get("msg", "is invalid"))
    kind = error.get("type")
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return "unknown field (not a field of this request)"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "expected a JSON object"
    if kind == "string_pattern_mismatch":
        means = meaning(str(error.get("ctx", {}).get("pattern", "")))
        if means is not None:
            return f"expected {means}; got {error.get('input')!r}"
    return in_our_words(message.removeprefix("Value error, "))


def install(app: FastAPI, store_errors: tuple[type[Exception], ...]) -> None:
    """Answer every error of `app` as a problem."""

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        detail = error.detail if isinstance(error.detail, str) else HTTPStatus(
            error.status_code).description
        if error.status_code == 404 and detail == "Not Found":
            detail = f"no such endpoint {request.url.path!r}; the endpoints are listed at /docs"
        elif error.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
        return problem(error.status_code, detail, code=getattr(error, "code", None),
                       field=getattr(error, "field", None), headers=error.headers)

    async def invalid(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        errors = [{"field": _location(e.get("loc", ())), "message": _validation_message(e)}
                  for e in error.errors()]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid request"
        return problem(422, detail, code="invalid_parameter",
                       field=errors[0]["field"] if errors else None, errors=errors)

    async def refused(request: Request, error: Exception) -> Response:
        status, code, headers = _REFUSALS[type(error)]
        if isinstance(error, Overloaded):
            headers = {**headers, "Retry-After": str(error.retry_after)}
        return problem(status, str(error), code=code, field=getattr(error, "field", None),
                       headers=headers)

    async def limited(request: Request, error: Exception) -> Response:
        assert isinstance(error, TenantLimited)
        request.app.state.mot.metrics.count_limited(error.code)
        headers = {"Retry-After": str(error.retry_after)}
        if error.unread_body:
            headers["Connection"] = "close"
        return problem(429, str(error), code=error.code, headers=headers)

    async def store_unavailable(request: Request, error: Exception) -> Response:
        log.warning("store error on %s %s: %s", request.method, request.url.path, error)
        return problem(503, f"the store is unavailable ({type(error).__name__}); retry later",
                       code="store_unavailable", headers={"Retry-After": "1"})

    async def internal(request: Request, error: Exception) -> Response:
        # (Starlette logs the traceback and re-raises after this answer is sent.)
        return problem(500, "an internal error; it was logged (mot.http)", code="internal_error")

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
    for refusal in _REFUSALS:
        app.add_exception_handler(refusal, refused)
    app.add_exception_handler(TenantLimited, limited)
    for error_type in store_errors:
        app.add_exception_handler(error_type, store_unavailable)
    app.add_exception_handler(Exception, internal)
