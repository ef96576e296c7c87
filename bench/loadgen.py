"""HTTP/1.1 load generator on raw asyncio streams, with keep-alive connections.

Two modes:

- open loop (`rate`): request i is due at start + i / rate, whatever happened
  before it. Its latency runs from that due time, not from when it was sent, so
  a stalled server cannot hide the queue it causes (no coordinated omission):
  a request that waited for a free connection, or for the generator itself,
  counts that wait as latency. `send_lag` says how much of it was ours. The
  schedule keeps time on a thread of its own (see `open_loop`).
- closed loop (`concurrency`): that many clients, each sending its next request
  as soon as the last one is answered. For throughput.

Run as its own process, so the load it drives and the probe that measures are
never slowed by each other's event loop:

    python bench/loadgen.py '{"port": 8000, "requests": [["GET", "/health"]], ...}'

prints one JSON object (see `Result`). Every run ends within
warmup_s + duration_s + grace_s, whatever the server does.
"""

import asyncio
import json
import sys
import threading
import time
from dataclasses import asdict, dataclass, field

# A request is [method, path] or [method, path, json_body].
Request = list


@dataclass
class Load:
    port: int
    requests: list[Request]  # cycled through, request after request
    duration_s: float
    rate: float | None = None  # open loop: requests per second
    concurrency: int | None = None  # closed loop: clients
    warmup_s: float = 0.0  # closed loop: completions before this are not counted
    grace_s: float = 2.0  # open loop: how long the last requests may still take
    max_connections: int = 1024
    keep_bodies: bool = False  # open loop: return each response body


@dataclass
class Result:
    mode: str
    window_s: float
    # Open loop, one entry per request, in due order. `latency` is None for a
    # request still unanswered at the deadline; `censored` then holds how long
    # it had waited so far (a lower bound on its latency).
    due: list[float] = field(default_factory=list)
    latency: list[float | None] = field(default_factory=list)
    send_lag: list[float] = field(default_factory=list)
    status: list[int] = field(default_factory=list)  # 0: no answer
    bodies: list[str] = field(default_factory=list)
    censored: list[float] = field(default_factory=list)
    # Closed loop: answers that arrived within the window.
    completed: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    errors: int = 0


def encode(request: Request, port: int) -> bytes:
    method, path, *rest = request
    body = json.dumps(rest[0]).encode() if rest else b""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    if rest:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.sent = 0.0

    @classmethod
    async def open(cls, port: int) -> "Connection":
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def exchange(self, raw: bytes) -> tuple[int, bytes, bool]:
        """Send one request; return status, body and whether to keep the connection."""
        self.sent = asyncio.get_running_loop().time()
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        at = lower.find(b"\r\ncontent-length:")
        if at < 0:
            raise ValueError("response without Content-Length")
        length = int(lower[at + 17 : lower.index(b"\r\n", at + 2)])
        body = await self.reader.readexactly(length)
        return status, body, b"\r\nconnection: close" not in lower

    def close(self) -> None:
        self.writer.close()


class Pool:
    """Keep-alive connections, at most `size` at once; opened on demand."""

    def __init__(self, port: int, size: int):
        self.port = port
        self.slots = asyncio.Semaphore(size)
        self.idle: list[Connection] = []
        self.all: set[Connection] = set()

    async def exchange(self, raw: bytes) -> tuple[int, bytes, float]:
        """Status, body and the loop time the request was written."""
        async with self.slots:
            connection = self.idle.pop() if self.idle else None
            if connection is None:
                connection = await Connection.open(self.port)
                self.all.add(connection)
            keep = False
            try:
                status, body, keep = await connection.exchange(raw)
            finally:
                if keep:
                    self.idle.append(connection)
                else:
                    connection.close()
                    self.all.discard(connection)
            return status, body, connection.sent

    def close(self) -> None:
        for connection in self.all:
            connection.close()


async def open_loop(load: Load) -> Result:
    loop = asyncio.get_running_loop()
    raws = [encode(request, load.port) for request in load.requests]
    assert load.rate
    count = max(1, round(load.rate * load.duration_s))
    result = Result("open", load.duration_s)
    result.due = [i / load.rate for i in range(count)]
    result.latency = [None] * count
    result.send_lag = [0.0] * count
    result.status = [0] * count
    bodies: list[str] = [""] * count
    pool = Pool(load.port, load.max_connections)
    start = loop.time() + 0.05

    async def one(i: int) -> None:
        due = start + result.due[i]
        try:
            # Waiting for a free connection counts as latency, and as send lag.
            status, body, sent = await pool.exchange(raws[i % len(raws)])
        except (OSError, ValueError, asyncio.IncompleteReadError):
            result.errors += 1
            result.latency[i] = loop.time() - due
            return
        result.latency[i] = loop.time() - due
        result.send_lag[i] = sent - due
        result.status[i] = status
        if load.keep_bodies:
            bodies[i] = body.decode(errors="replace")

    # The schedule runs on a thread of its own: time.sleep wakes within tens of
    # microseconds of its target, where the event loop's timers round up to
    # whole milliseconds (epoll) and so sent each probe ~1.5 ms late at the
    # median, a floor of our own under every latency figure.
    tasks: list[asyncio.Task] = []
    all_started = loop.create_future()

    def begin(i: int) -> None:
        tasks.append(asyncio.create_task(one(i)))
        if len(tasks) == count:
            all_started.set_result(None)

    def schedule() -> None:
        for i in range(count):
            delay = start + result.due[i] - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            loop.call_soon_threadsafe(begin, i)

    threading.Thread(target=schedule, daemon=True).start()
    await all_started
    deadline = start + load.duration_s + load.grace_s
    pending = [task for task in tasks if not task.done()]
    if pending:
        await asyncio.wait(pending, timeout=max(0.0, deadline - loop.time()))
    now = loop.time()
    for i, task in enumerate(tasks):
        if not task.done():
            task.cancel()
            result.censored.append(now - (start + result.due[i]))
    await asyncio.gather(*tasks, return_exceptions=True)
    pool.close()
    if load.keep_bodies:
        result.bodies = bodies
    return result


async def closed_loop(load: Load) -> Result:
    loop = asyncio.get_running_loop()
    raws = [encode(request, load.port) for request in load.requests]
    assert load.concurrency
    result = Result("closed", load.duration_s)
    pool = Pool(load.port, load.concurrency)
    start = loop.time()
    window_start, window_end = start + load.warmup_s, start + load.warmup_s
    window_end += load.duration_s

    async def client(offset: int) -> None:
        n = offset
        while loop.time() < window_end:
            sent = loop.time()
            try:
                status, _, _ = await pool.exchange(raws[n % len(raws)])
            except (OSError, ValueError, asyncio.IncompleteReadError):
                result.errors += 1
                await asyncio.sleep(0.01)
                continue
            n += 1
            done = loop.time()
            if window_start <= done <= window_end:
                result.completed += 1
                key = str(status)
                result.statuses[key] = result.statuses.get(key, 0) + 1
                result.latencies.append(done - sent)

    clients = [asyncio.create_task(client(i)) for i in range(load.concurrency)]
    # Answers after the window are not counted: stop waiting for them.
    await asyncio.wait(clients, timeout=window_end - loop.time() + 0.05)
    for task in clients:
        task.cancel()
    await asyncio.gather(*clients, return_exceptions=True)
    pool.close()
    return result


async def drive(load: Load) -> Result:
    return await (open_loop(load) if load.rate else closed_loop(load))


def main() -> None:
    load = Load(**json.loads(sys.argv[1]))
    result = asyncio.run(drive(load))
    json.dump(asdict(result), sys.stdout)


if __name__ == "__main__":
    main()
