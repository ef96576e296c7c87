"""A rendered service's memory while a 64 MiB request body arrives, with the
body limit (MAX_BODY_BYTES, 1 MiB by default) and with it raised past the body,
as a service without a limit reads it (issue 31: one client must not make the
process grow with its body).

    uv run python -m bench.body_memory                 # renders a project
    uv run python -m bench.body_memory --project DIR   # an already synced one

It renders an async_io project and starts the app its body-limit tests use
(tests/runtime/body_api.py: the service plus a JSON route), once per limit and
way of sending: a chunked body and one with its Content-Length declared. It
prints the server's resident memory and its peak (VmHWM) before and after the
body, and the answer. Not part of `python -m bench`: memory is not a speed, and
it does not change with the machine's load; the figures are kept in
docs/benchmarks.md by hand.
"""

import argparse
import http.client
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .services import REPO, Project, Server, _render

MiB = 1024 * 1024
BODY = 64 * MiB
ANSWERS = {"workload": "async_io", "task_durability": "ephemeral"}
LIMITS = {
    "the default, 1 MiB": {},
    "raised to 1 GiB, as without a limit": {"MAX_BODY_BYTES": str(1024 * MiB)},
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.body_memory")
    parser.add_argument("--project", type=Path, help="a rendered, synced project")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="body-memory-") as scratch:
        if args.project is None:
            args.project = _render(REPO, Path(scratch) / "service", ANSWERS)
        project = Project(args.project)
        print(f"load before: {Path('/proc/loadavg').read_text().strip()}")
        print("| MAX_BODY_BYTES | 64 MiB body | Answer | Peak before | Peak after |")
        print("|---|---|---|---|---|")
        for limit, env in LIMITS.items():
            for chunked in (True, False):
                server = Server(
                    "body-api",
                    project.python,
                    "tests.runtime.body_api:app",
                    project.path,
                    {"LIVENESS_PORT": "0", **env},
                    log_dir=Path(scratch),
                )
                with server:
                    assert server.process is not None
                    before = peak_memory(server.process.pid)
                    status = send(server.port, chunked)
                    after = peak_memory(server.process.pid)
                sent = "chunked" if chunked else "Content-Length declared"
                print(
                    f"| {limit} | {sent} | {status} | {before / MiB:.1f} MiB"
                    f" | {after / MiB:.1f} MiB |"
                )
        print(f"load after: {Path('/proc/loadavg').read_text().strip()}")


def peak_memory(pid: int) -> int:
    """The most resident memory the process has had (VmHWM), in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmHWM:\s+(\d+) kB$", status, re.MULTILINE)
    assert found, status
    return int(found[1]) * 1024


def json_body() -> Iterator[bytes]:
    """A JSON string of BODY bytes, a MiB at a time."""
    yield b'{"x": "'
    left = BODY - len(b'{"x": "') - len(b'"}')
    while left:
        piece = min(MiB, left)
        yield b"a" * piece
        left -= piece
    yield b'"}'


def send(port: int, chunked: bool) -> str:
    """POST the body to the JSON route; the answer's status."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"content-type": "application/json"}
    body: Iterator[bytes] | bytes = json_body() if chunked else b"".join(json_body())
    try:
        connection.request("POST", "/test/json", body, headers, encode_chunked=chunked)
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused while sending: its answer may be waiting all the same
    try:
        return str(connection.getresponse().status)
    except (http.client.HTTPException, OSError) as error:
        return f"no answer ({type(error).__name__})"
    finally:
        connection.close()


if __name__ == "__main__":
    main()
