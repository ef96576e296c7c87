"""A slow upstream in its own process: every GET waits `?ms=` milliseconds
(default 100), then answers `{"waited_ms": ms}`, as the examples' /upstream/slow.

The rendered services call it through UPSTREAM_URL, as a deployed service calls
another one: without it, /upstream/fan-out calls the service itself, and the
same event loop serves both ends of every call.

    python bench/apps/upstream.py PORT
"""

import asyncio
import re
import sys

MS = re.compile(rb"[?&]ms=(\d+)")


class Upstream(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.pending = b""

    def data_received(self, data: bytes) -> None:
        self.pending += data
        while b"\r\n\r\n" in self.pending:  # GETs only: a request ends with its head
            head, self.pending = self.pending.split(b"\r\n\r\n", 1)
            found = MS.search(head.split(b"\r\n", 1)[0])
            ms = int(found.group(1)) if found else 100
            asyncio.get_running_loop().call_later(ms / 1000, self.answer, ms)

    def answer(self, ms: int) -> None:
        if self.transport.is_closing():
            return
        body = b'{"waited_ms":%d}' % ms
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        self.transport.write(head + b"content-length: %d\r\n\r\n" % len(body) + body)


async def serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(
        Upstream, "127.0.0.1", port, backlog=2048
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
