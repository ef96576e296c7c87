"""HTTP/1.1 load generator with keep-alive connections.

Two modes:

- open loop (`rate`, or `phases` of different rates one after another):
  request i is due at start + i / rate, whatever happened before it. Its
  latency runs from that due time, not from when it was sent, so a stalled
  server cannot hide the queue it causes (no coordinated omission): a request
  that waited for a free connection, or for the generator itself, counts that
  wait as latency. `send_lag` says how much of it was ours. Plain
  sockets on two threads (see `OpenLoop`): the probe of every latency figure.
- closed loop (`concurrency`): that many clients on asyncio streams, each
  sending its next request as soon as the last one is answered. For throughput.

Run as its own process, so the load it drives and the probe that measures are
never slowed by each other's event loop:

    python bench/loadgen.py '{"port": 8000, "requests": [["GET", "/health"]], ...}'

prints one JSON object (see `Result`). Every run ends within
warmup_s + duration_s + grace_s, whatever the server does.
"""

import asyncio
import collections
import json
import select
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

# A request is [method, path] or [method, path, json_body].
Request = list[Any]


@dataclass
class Load:
    port: int
    requests: list[Request]  # cycled through, request after request
    duration_s: float
    rate: float | None = None  # open loop: requests per second
    concurrency: int | None = None  # closed loop: clients
    warmup_s: float = 0.0  # closed loop: completions before this are not counted
    grace_s: float = 2.0  # open loop: how long the last requests may still take
    max_connections: int = 1024  # open loop: connections open at once, at most
    keep_bodies: bool = False  # open loop: return each response body
    # Open loop whose rate changes: [rate, seconds, request] one after another,
    # instead of `rate` and `requests`; duration_s is then their seconds summed.
    phases: list[list[Any]] | None = None
    # Open loop: the time.monotonic() to start at, instead of now. The clock is
    # the machine's, so loads in several processes given the same one share a
    # time axis: a poll of the server's state lines up with the load it sees.
    start_at: float | None = None


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


def read_head(head: bytes) -> tuple[int, int | None, bool]:
    """A response head's status, Content-Length (None without one) and whether
    the connection stays open."""
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    length = int(lower[at + 17 : lower.index(b"\r\n", at + 2)]) if at >= 0 else None
    return int(head[9:12]), length, b"\r\nconnection: close" not in lower


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

    @classmethod
    async def open(cls, port: int) -> "Connection":
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def exchange(self, raw: bytes) -> tuple[int, bool]:
        """Send one request; return its status and whether to keep the connection."""
        self.writer.write(raw)
        status, length, keep = read_head(await self.reader.readuntil(b"\r\n\r\n"))
        if length is None:
            raise ValueError("response without Content-Length")
        await self.reader.readexactly(length)
        return status, keep

    def close(self) -> None:
        self.writer.close()


class Pool:
    """Keep-alive connections, at most `size` at once; opened on demand."""

    def __init__(self, port: int, size: int):
        self.port = port
        self.slots = asyncio.Semaphore(size)
        self.idle: list[Connection] = []
        self.all: set[Connection] = set()

    async def exchange(self, raw: bytes) -> int:
        """The answer's status."""
        async with self.slots:
            connection = self.idle.pop() if self.idle else None
            if connection is None:
                connection = await Connection.open(self.port)
                self.all.add(connection)
            keep = False
            try:
                status, keep = await connection.exchange(raw)
            finally:
                if keep:
                    self.idle.append(connection)
                else:
                    connection.close()
                    self.all.discard(connection)
            return status

    def close(self) -> None:
        for connection in self.all:
            connection.close()


def schedule(load: Load) -> tuple[list[float], list[bytes]]:
    """An open loop's requests: when each is due (seconds from the start), and
    its bytes."""
    phases = load.phases or [[load.rate, load.duration_s, None]]
    due: list[float] = []
    raws: list[bytes] = []
    begin = 0.0
    for rate, seconds, request in phases:
        count = max(1, round(rate * seconds))
        due += [begin + i / rate for i in range(count)]
        if request is None:  # one rate: the requests, cycled through
            cycle = [encode(each, load.port) for each in load.requests]
            raws += [cycle[i % len(cycle)] for i in range(count)]
        else:
            raws += [encode(request, load.port)] * count
        begin += seconds
    return due, raws


class OpenLoop:
    """Open loop on two threads and plain sockets, no event loop: on a machine
    whose cores are all busy, every wake-up of ours costs milliseconds, and the
    event loop this used to run on took three per request (the schedule's
    thread, the loop woken through its self-pipe, the answer), which added ~3
    ms to the p99 of the cheapest server there is. Here the sender sleeps until
    a request is due and writes it at once (one wake-up), and the receiver,
    blocked in epoll, reads every answer (one more), as a remote client would.

    A request due while every connection is busy waits for one (up to
    `max_connections`, then for one to come free): that wait counts as latency,
    and as send lag.
    """

    def __init__(self, load: Load) -> None:
        assert load.rate or load.phases
        self.load = load
        self.result = Result("open", load.duration_s)
        self.result.due, self.raws = schedule(load)
        count = len(self.result.due)
        self.result.latency = [None] * count
        self.result.send_lag = [0.0] * count
        self.result.status = [0] * count
        self.bodies = [""] * count
        self.answered = 0
        self.epoll = select.epoll()
        self.lock = threading.Lock()  # idle, waiting, open_count and sockets
        self.idle: list[socket.socket] = []
        self.waiting: collections.deque[int] = collections.deque()
        self.open_count = 0
        # Per socket: the request on it (None while idle), what it has read so
        # far, and whether the request is written (False while connecting).
        self.sockets: dict[int, list[Any]] = {}
        self.done = threading.Event()  # every request answered, or failed
        self.over = False  # past the deadline: nothing more is recorded
        self.start = time.monotonic() + 0.05
        if load.start_at is not None:
            self.start = load.start_at

    def run(self) -> Result:
        receiver = threading.Thread(target=self.receive, daemon=True)
        receiver.start()
        count = len(self.result.due)
        for i in range(count):
            delay = self.start + self.result.due[i] - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.send(i)
        deadline = self.start + self.load.duration_s + self.load.grace_s
        self.done.wait(max(0.0, deadline - time.monotonic()))
        now = time.monotonic()
        with self.lock:
            self.over = True
            for i, latency in enumerate(self.result.latency):
                if latency is None:
                    self.result.censored.append(now - (self.start + self.result.due[i]))
        if self.load.keep_bodies:
            self.result.bodies = list(self.bodies)
        return self.result

    def send(self, i: int) -> None:
        """Write request i on an idle connection, open one, or queue it."""
        with self.lock:
            if self.idle:
                sock = self.idle.pop()
            elif self.open_count < self.load.max_connections:
                self.open_count += 1
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.sockets[sock.fileno()] = [sock, i, b"", False]
                sock.connect_ex(("127.0.0.1", self.load.port))
                # Writable once connected: the receiver writes the request then.
                self.epoll.register(sock.fileno(), select.EPOLLOUT)
                return
            else:
                self.waiting.append(i)
                return
            state = self.sockets[sock.fileno()]
            state[1], state[2], state[3] = i, b"", True
        self.write(sock, i)

    def write(self, sock: socket.socket, i: int) -> None:
        self.result.send_lag[i] = time.monotonic() - (self.start + self.result.due[i])
        try:
            sock.sendall(self.raws[i])
        except OSError:
            self.fail(sock)

    def receive(self) -> None:
        while not self.done.is_set():
            for fd, _ in self.epoll.poll(0.1):
                with self.lock:
                    state = self.sockets.get(fd)
                if state is None:
                    continue
                sock, i, _, written = state
                if not written:  # connected, or refused
                    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        self.fail(sock)
                        continue
                    state[3] = True
                    self.epoll.modify(fd, select.EPOLLIN)
                    self.write(sock, i)
                    continue
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.fail(sock)
                    continue
                state[2] += data
                self.parse(sock, state)

    def parse(self, sock: socket.socket, state: list[Any]) -> None:
        """Record the answer once it is whole; reuse or close the connection."""
        _, i, buffer, _ = state
        end = buffer.find(b"\r\n\r\n")
        if end < 0 or i is None:
            return
        status, length, keep = read_head(buffer[: end + 4])
        length = length or 0
        if len(buffer) < end + 4 + length:
            return
        body = buffer[end + 4 : end + 4 + length] if self.load.keep_bodies else b""
        self.record(i, status, body.decode(errors="replace"))
        if not keep:
            self.close(sock)
            self.next_waiting()
            return
        with self.lock:
            state[1], state[2] = None, b""
            following = self.waiting.popleft() if self.waiting else None
            if following is None:
                self.idle.append(sock)
            else:
                state[1] = following
        if following is not None:
            self.write(sock, following)

    def fail(self, sock: socket.socket) -> None:
        """A connection refused, reset or closed: its request gets no answer."""
        with self.lock:
            state = self.sockets.get(sock.fileno())
        i = state[1] if state else None
        self.close(sock)
        if i is not None:
            self.record(i, 0, "")
        self.next_waiting()

    def close(self, sock: socket.socket) -> None:
        with self.lock:
            if self.sockets.pop(sock.fileno(), None) is None:
                return
            self.open_count -= 1
            if sock in self.idle:
                self.idle.remove(sock)
        self.epoll.unregister(sock.fileno())
        sock.close()

    def next_waiting(self) -> None:
        """A connection closed: open one for the longest-waiting request."""
        with self.lock:
            following = self.waiting.popleft() if self.waiting else None
        if following is not None:
            self.send(following)

    def record(self, i: int, status: int, body: str) -> None:
        """Request i's end: an answer with `status`, or 0 for none (an error)."""
        now = time.monotonic()
        with self.lock:
            if self.over:
                return
            self.result.latency[i] = now - (self.start + self.result.due[i])
            self.result.status[i] = status
            self.result.errors += not status
            self.bodies[i] = body
            self.answered += 1
            if self.answered == len(self.result.due):
                self.done.set()


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
                status = await pool.exchange(raws[n % len(raws)])
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


def drive(load: Load) -> Result:
    if load.rate or load.phases:
        return OpenLoop(load).run()
    return asyncio.run(closed_loop(load))


def main() -> None:
    load = Load(**json.loads(sys.argv[1]))
    result = drive(load)
    json.dump(asdict(result), sys.stdout)


if __name__ == "__main__":
    main()
