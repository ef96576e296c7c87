"""Error answers as the OpenAPI document shows them: every status a route can give.

Clients (and tests/runtime/test_fuzz.py) read the document to learn what an
operation may answer, so a status that is not in it is a bug. The statuses
every route shares come from the runtime (`SHARED`, added by `create_app`);
a route declares its own: `@router.get(..., responses={404: error("...")})`.
"""

from typing import Any

from pydantic import BaseModel


class Detail(BaseModel):
    """The body of every error but 422: `{"detail": "what went wrong"}`."""

    detail: str


def error(description: str) -> dict[str, Any]:
    """An error status for `responses=`, with its JSON body."""
    return {"model": Detail, "description": description}


def retry_later(description: str) -> dict[str, Any]:
    """A 503 for `responses=`: it always carries Retry-After, in seconds."""
    retry_after = {
        "description": "Seconds to wait before trying again.",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    }
    return {**error(description), "headers": {"Retry-After": retry_after}}


# Over MAX_BODY_BYTES, or a route's own `max_body_size` (runtime/bodies.py).
TOO_LARGE = error("The body is over the size limit.")

# Shared by every route but the probes, which are never shed and take no body.
SHARED: dict[int | str, dict[str, Any]] = {
    # FastAPI answers 422 for malformed JSON, but 400 for a body it cannot
    # decode at all (bytes that are not UTF-8).
    400: error("The body could not be read (not UTF-8)."),
    413: TOO_LARGE,
    # Documented even with SHED_LOAD=false: the setting can change at start,
    # the document cannot.
    503: retry_later("Overloaded: shedding load, try again after Retry-After."),
}
