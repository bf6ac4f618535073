"""A load generator for the model servers, run as its own process:

    python tests/loadgen.py URL BODY_JSON SECONDS CONNECTIONS

C keep-alive HTTP/1.1 connections (asyncio, one event loop: little CPU taken from the server
it measures) send the same POST as fast as answers come back, for a fixed time. Prints one JSON
object: every latency of a 200, the count of each other status, and every connection that
failed (refused, reset, closed mid-answer) — the figures the load test and the serving bench
report. A dropped connection is reopened, and counted.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from urllib.parse import urlsplit


async def _connection(host: str, port: int, request: bytes, stop: float, out: dict) -> None:
    reader = writer = None
    while time.monotonic() < stop:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            assert reader is not None
            started = time.perf_counter()
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length, close = 0, False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
                elif name.strip().lower() == b"connection" and value.strip().lower() == b"close":
                    close = True
            await reader.readexactly(length)
            if status == 200:
                out["latencies"].append(time.perf_counter() - started)
            else:
                out["statuses"][status] += 1
            if close:
                writer.close()
                reader = writer = None
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            out["dropped"].append(f"{type(exc).__name__}: {exc}"[:200])
            if writer is not None:
                writer.close()
            reader = writer = None
            await asyncio.sleep(0.05)
    if writer is not None:
        writer.close()


async def run(url: str, body: bytes, seconds: float, connections: int) -> dict:
    """Load ``url`` for ``seconds`` over ``connections`` connections; the raw figures."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = (
        f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    out: dict = {"latencies": [], "statuses": Counter(), "dropped": []}
    stop = time.monotonic() + seconds
    await asyncio.gather(*(_connection(host, port, request, stop, out) for _ in range(connections)))
    return out


def summary(out: dict, seconds: float) -> dict:
    """Requests/s and latency percentiles (ms) from :func:`run`'s figures."""
    latencies = sorted(out["latencies"])

    def pct(q: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000
            if latencies
            else float("nan")
        )

    return {
        "ok": len(latencies),
        "rps": len(latencies) / seconds,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "statuses": {str(k): v for k, v in out["statuses"].items()},
        "dropped": len(out["dropped"]),
        "dropped_examples": out["dropped"][:3],
        "seconds": seconds,
    }


def main() -> int:
    url, body, seconds, connections = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    out = asyncio.run(run(url, body.encode(), seconds, connections))
    print(json.dumps({**summary(out, seconds), "latencies": out["latencies"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
