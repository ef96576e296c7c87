"""Scenario 7's floor: bench/apps/adaptive.py's routes, with no thread pool.

A bare asyncio server, on the suite's interpreter like tiny.py, answering

- GET /bench/wait?ms=N after N ms,
- GET /bench/downstream?ms=N after N ms inside a downstream of SLOTS at once,

each call started the moment it arrives: a pool of unbounded size that costs
nothing. No pool size answers sooner, so each latency of the scenario is read
against this one's. GET requests only, one at a time on a connection (as
bench/loadgen.py sends them).

    python bench/apps/unlimited.py PORT SLOTS
"""

import asyncio
import sys
from urllib.parse import parse_qs, urlsplit

HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
)


class Answer(asyncio.Protocol):
    # Tasks are only weakly referenced by the loop: these keep them alive.
    running: set[asyncio.Task[None]] = set()

    def __init__(self, downstream: asyncio.Semaphore) -> None:
        self.downstream = downstream

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.pending = b""

    def data_received(self, data: bytes) -> None:
        self.pending += data
        while b"\r\n\r\n" in self.pending:
            head, self.pending = self.pending.split(b"\r\n\r\n", 1)
            task = asyncio.ensure_future(self.answer(head.split(b" ", 2)[1].decode()))
            self.running.add(task)
            task.add_done_callback(self.running.discard)

    async def answer(self, target: str) -> None:
        url = urlsplit(target)
        ms = int(parse_qs(url.query).get("ms", ["0"])[0])
        if url.path == "/bench/downstream":
            async with self.downstream:
                await asyncio.sleep(ms / 1000)
        else:
            await asyncio.sleep(ms / 1000)
        body = b'{"waited_ms":%d}' % ms
        if not self.transport.is_closing():
            self.transport.write(HEAD % len(body) + body)


async def serve(port: int, slots: int) -> None:
    downstream = asyncio.Semaphore(slots)
    server = await asyncio.get_running_loop().create_server(
        lambda: Answer(downstream), "127.0.0.1", port, backlog=4096
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), int(sys.argv[2])))
