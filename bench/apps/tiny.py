"""The cheapest HTTP server asyncio can be: a fixed answer to every GET.

It costs so little that a load generator driving it runs at its own ceiling:
the suite measures its generators against it. GET requests only (no bodies).

    python bench/apps/tiny.py PORT
"""

import asyncio
import sys

RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    b'content-length: 15\r\n\r\n{"status":"ok"}'
)


class Answer(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.pending = b""

    def data_received(self, data: bytes) -> None:
        self.pending += data
        heads = self.pending.count(b"\r\n\r\n")
        if heads:
            self.pending = self.pending[self.pending.rindex(b"\r\n\r\n") + 4 :]
            self.transport.write(RESPONSE * heads)


async def serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(
        Answer, "127.0.0.1", port, backlog=2048
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
