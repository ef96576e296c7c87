"""The rendered service's own app, with two blocking routes for scenario 7.

The service's package comes from BENCH_PACKAGE (the scenario sets it), so the
routes run on its whole runtime: its thread pool, sized as its settings say,
its middleware and its /health. The service's own /blocking/wait caps its wait
at 200 ms; the scenario's loads hold a thread for longer.

- GET /bench/wait?ms=N: a blocking call of N ms.
- GET /bench/downstream?ms=N: the same call, inside a downstream that admits
  BENCH_DOWNSTREAM_SLOTS calls at once, as a database with that many
  connections does: past that many threads, the others wait on it, and more
  threads add no throughput.
"""

import importlib
import os
import threading
import time

app = importlib.import_module(f"{os.environ['BENCH_PACKAGE']}.main").app
downstream = threading.BoundedSemaphore(int(os.environ["BENCH_DOWNSTREAM_SLOTS"]))


def wait(ms: int) -> dict[str, int]:
    time.sleep(ms / 1000)
    return {"waited_ms": ms}


def call_downstream(ms: int) -> dict[str, int]:
    with downstream:
        time.sleep(ms / 1000)
    return {"waited_ms": ms}


# Plain `def`: FastAPI runs them on the thread pool, as it runs the service's.
# Their return annotations make it validate each return value on the pool too,
# a second trip through it, as it does for the service's own routes: kept, so
# that a call here costs the pool what a call to one of those does.
app.add_api_route("/bench/wait", wait, methods=["GET"])
app.add_api_route("/bench/downstream", call_downstream, methods=["GET"])
