"""CPU work in plain `def` endpoints: on AnyIO's threads, not in a process pool.

/cpu/hash is the rendered cpu_bound service's work (PBKDF2 through OpenSSL,
which releases the GIL while it computes). /cpu/python is pure-Python work of
a similar duration, which holds the GIL, as parsing and most Python code do.
"""

import hashlib

from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class HashRequest(BaseModel):
    secret: str
    salt: str
    iterations: int = 100_000


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/cpu/hash")
def hash_secret(body: HashRequest) -> dict[str, str]:
    key = hashlib.pbkdf2_hmac(
        "sha256", body.secret.encode(), body.salt.encode(), body.iterations
    )
    return {"digest": key.hex()}


@app.post("/cpu/python")
def python_work(body: HashRequest) -> dict[str, int]:
    total = 0
    # 3.5 loop turns take about as long as one PBKDF2 round (measured on the
    # machine of docs/benchmarks.md; the table shows each variant's call time).
    for i in range(body.iterations * 7 // 2):
        total = (total + i * i) % 1_000_003
    return {"total": total}
