"""The bare app behind one pass-through `BaseHTTPMiddleware`, the way most
middleware is written (`@app.middleware("http")`): for scale against loopsafe's
pure ASGI middleware.
"""

from collections.abc import Awaitable, Callable

from fastapi import Request, Response

from bare import app


@app.middleware("http")
async def pass_through(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    return await call_next(request)
