"""The naive scaffold: a blocking call inside `async def`.

`time.sleep` here stands in for requests, psycopg2 or boto3 called from an
`async def` endpoint: it stops the event loop, and every other request with it.
"""

import time

from fastapi import FastAPI

app = FastAPI()


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/blocking/wait")
async def wait(ms: int = 100) -> dict[str, int]:
    time.sleep(ms / 1000)  # noqa: ASYNC251 - the mistake this scaffold shows
    return {"waited_ms": ms}
