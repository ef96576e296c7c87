"""Bounded request bodies: MAX_BODY_BYTES for every route, more for a route that asks.

Without a limit, FastAPI reads a JSON body whole into memory before validating
it, so one client could make the process grow without bound. A body over the
limit is refused with 413 before it is buffered: a declared Content-Length over
it before the app runs at all, a body sent without one (chunked) as soon as the
bytes received pass it.

A route that takes uploads raises its own limit with FastAPI's own option,
`@router.post("/uploads", max_body_size=50 * MiB)`, which FastAPI enforces
for that route too. Routes are looked up only for a body over MAX_BODY_BYTES:
an ordinary request pays for one header check.

A route that starts its answer before it has read the whole body cannot turn
the answer into a 413 once the limit is passed: the request ends in an error
(logged) and the server closes the connection, so the client never takes the
cut-off answer for a whole one.
"""

# Annotations stay strings, never evaluated: the nested functions below are
# made for every request.
from __future__ import annotations

from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.responses import JSONResponse
from starlette.routing import Match
from starlette.types import Message, Receive, Scope, Send

MiB = 1024 * 1024


class BodyTooLarge(HTTPException):
    """413, with the limit passed. Raised while the app reads the body, FastAPI
    answers it as any HTTPException: `{"detail": "..."}`."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is over the limit of {limit} bytes.")


class BodyLimit:
    """MAX_BODY_BYTES, read by the lifespan; the middleware bounds every body by it."""

    def __init__(self) -> None:
        self.max_bytes = MiB  # the setting's default, until the lifespan has read it

    def configure(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    def bound(self, scope: Scope, receive: Receive, length: int | None) -> Receive:
        """`receive`, bounded to the limit; BodyTooLarge if the declared `length`
        (Content-Length) is over it already (the app must not run: nothing has
        been read)."""
        if length is None:
            # No declared length (chunked): counted as it arrives.
            return counted(receive, scope, self.max_bytes)
        # The server reads no more than the declared length: nothing to count.
        if length <= self.max_bytes:
            return receive
        limit = max(self.max_bytes, route_limit(scope))
        if length > limit:
            raise BodyTooLarge(limit)
        return receive


def counted(receive: Receive, scope: Scope, limit: int) -> Receive:
    """`receive`, raising BodyTooLarge once the bytes received pass `limit`."""
    received = 0

    # Made for every request without a Content-Length.
    async def receive_counted() -> Message:
        nonlocal received, limit
        message = await receive()
        received += len(message.get("body", b""))
        if received > limit:
            # The route, matched by now, may allow more: FastAPI's own limiter
            # leaves the route's limit in the scope.
            limit = max(limit, scope.get(MAX_BODY_SIZE_SCOPE_KEY) or 0)
            if received > limit:
                raise BodyTooLarge(limit)
        return message

    return receive_counted


def route_limit(scope: Scope) -> int:
    """The `max_body_size` of the route that will answer `scope`; 0 if it set none.

    Routes are matched as the router will match them, routers included with
    `include_router` too (their limit applies to their routes). A walk over
    every route: only for a body declared over MAX_BODY_BYTES.
    """
    for route in iter_route_contexts(scope["app"].routes):
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return getattr(route, "max_body_size", None) or 0
    return 0


async def refuse(
    scope: Scope, receive: Receive, send: Send, error: BodyTooLarge
) -> None:
    """Answer 413 as FastAPI answers an HTTPException, the body left unread."""
    response = JSONResponse({"detail": error.detail}, status_code=error.status_code)
    await response(scope, receive, send)
