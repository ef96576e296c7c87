"""A bare FastAPI app: the rendered service's /health, without its middleware or
lag monitor. The handler is the rendered one's own, imported from the package
named by BENCH_PACKAGE, so the two apps differ by exactly what is measured.
"""

import importlib
import os

from fastapi import FastAPI

concurrency = importlib.import_module(f"{os.environ['BENCH_PACKAGE']}.concurrency")

app = FastAPI()


@app.get("/health")
async def health() -> dict[str, object]:
    return {"status": "ok", "thread_pool": concurrency.thread_pool_stats()}
