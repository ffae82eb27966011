"""The webhook receiver of ``bench/deliver.py`` and ``bench/run.py``: a minimal asyncio
HTTP/1.1 server.

Why it exists: the benchmarks need a receiver that is never the bottleneck and that can tell
whether every webhook arrived exactly once, and when the last one did. This one answers
``200`` with an empty body at once, keeps connections alive, and counts POSTs, body bytes and
distinct ``webhook-id`` headers per path, with the times of the first and last POST
(``GET /stats`` returns them as JSON). It runs in its own process on 127.0.0.1 so that it
does not share the worker's GIL.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import time
from multiprocessing.connection import Connection
from typing import Any

import httpx

STATS_PATH = "/stats"
RECEIVER_START_TIMEOUT_SECONDS = 10.0
RECEIVER_DESCRIPTION = (
    "asyncio HTTP/1.1 server in its own process, keep-alive, answers 200 with an empty body at once"
)

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


class _Tally:
    """POSTs, body bytes and distinct ``webhook-id`` values per path (one event loop: no lock)."""

    def __init__(self) -> None:
        self.paths: dict[str, dict[str, Any]] = {}

    def add(self, path: str, webhook_id: bytes | None, body_bytes: int) -> None:
        now = time.time()
        entry = self.paths.setdefault(
            path, {"posts": 0, "bytes": 0, "ids": set(), "first": now, "last": now}
        )
        entry["posts"] += 1
        entry["bytes"] += body_bytes
        entry["last"] = now
        if webhook_id is not None:
            entry["ids"].add(webhook_id)

    def snapshot(self) -> dict[str, Any]:
        """Per path: POSTs, bytes, distinct ids, and the Unix times of the first and last."""
        return {
            path: {
                "posts": e["posts"],
                "bytes": e["bytes"],
                "distinct_ids": len(e["ids"]),
                "first": e["first"],
                "last": e["last"],
            }
            for path, e in self.paths.items()
        }


async def _answer(
    tally: _Tally, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, _, header_block = head.partition(b"\r\n")
            method, path, _ = request_line.decode("latin-1").split(" ", 2)
            headers: dict[bytes, bytes] = {}
            for line in header_block.split(b"\r\n"):
                name, colon, value = line.partition(b":")
                if colon:
                    headers[name.strip().lower()] = value.strip()
            length = int(headers.get(b"content-length", b"0"))
            body = await reader.readexactly(length) if length else b""
            if method == "GET" and path == STATS_PATH:
                data = json.dumps(tally.snapshot()).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data))
            else:
                tally.add(path, headers.get(b"webhook-id"), len(body))
                writer.write(_OK)
            await writer.drain()
            if headers.get(b"connection", b"").lower() == b"close":
                return
    except (asyncio.IncompleteReadError, ConnectionError):
        return  # the client closed the connection
    finally:
        writer.close()


def serve_receiver(port_pipe: Connection) -> None:
    """Child-process entry: serve on a free port of 127.0.0.1, send the port, run forever."""

    async def main() -> None:
        tally = _Tally()
        server = await asyncio.start_server(
            lambda r, w: _answer(tally, r, w), "127.0.0.1", 0, backlog=1024
        )
        port_pipe.send(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


class Receiver:
    """The receiver's process, its URL and its counters."""

    def __init__(self) -> None:
        spawn = multiprocessing.get_context("spawn")
        ours, theirs = spawn.Pipe()
        self.process = spawn.Process(target=serve_receiver, args=(theirs,), daemon=True)
        self.process.start()
        if not ours.poll(RECEIVER_START_TIMEOUT_SECONDS):
            self.process.terminate()
            raise RuntimeError("the receiver did not start")
        self.url = f"http://127.0.0.1:{ours.recv()}"

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = httpx.get(self.url + STATS_PATH, trust_env=False).json()
        return result

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(5)

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
