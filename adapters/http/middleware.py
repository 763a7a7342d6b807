"""What applies to every request: the metrics, the early 413, no unknown query parameter."""

from __future__ import annotations

import time
from typing import Any

from fastapi import Request
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mot.adapters.http import errors
from mot.adapters.http.bodies import BodyTooLarge, declared_length
from mot.adapters.http.errors import ApiError
from mot.adapters.http.metrics import Metrics, route_of


class Observe:
    """Pure ASGI middleware: refuses a declared oversized body (413) before anything reads it,
    and records every answer in the metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics, max_body: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def observed(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            declared = declared_length(Headers(scope=scope))
            if declared is not None and declared > self.max_body:
                refusal = errors.problem(413, str(BodyTooLarge(self.max_body)),
                                         code="body_too_large", headers={"Connection": "close"})
                await refusal(scope, receive, observed)
                return
            await self.app(scope, receive, observed)
        finally:
            self.metrics.observe(scope["method"], route_of(scope), status[0],
                                 time.perf_counter() - started)


async def known_query_only(request: Request) -> None:
    """A query parameter no operation takes is a 400: a typo in a filter must not be ignored.
    (A coroutine: it does not block, so it needs no trip to the thread pool.)"""
    if not request.query_params:
        return
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    known = _query_names(dependant) if dependant is not None else set()
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        expected = ", ".join(sorted(known)) or "none"
        raise ApiError(400, f"unknown query parameter {', '.join(map(repr, unknown))} "
                            f"(expected: {expected})", code="unknown_parameter", field=unknown[0])
    # `?stage=fan&stage=loyal` was answered with loyal's rows, silently: every parameter
    # takes one value, so it may be given once.
    repeated = sorted(name for name in set(request.query_params)
                      if len(request.query_params.getlist(name)) > 1)
    if repeated:
        raise ApiError(400, f"query parameter {repeated[0]!r} given "
                            f"{len(request.query_params.getlist(repeated[0]))} times; it takes"
                            " one value", code="repeated_parameter", field=repeated[0])


def _query_names(dependant: Any) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names
