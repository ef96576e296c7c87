"""The default scaffold: a plain `def` endpoint on AnyIO's default 40 threads.

Right for the event loop, but nobody sized the pool: past 40 concurrent
blocking calls, the rest queue for a thread.
"""

import time

from fastapi import FastAPI

app = FastAPI()


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/blocking/wait")
def wait(ms: int = 100) -> dict[str, int]:
    time.sleep(ms / 1000)
    return {"waited_ms": ms}
