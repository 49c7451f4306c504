"""A small HTTP/1.1 keep-alive load generator for the benchmarks (loopback only).

``latencies`` times sequential requests on one connection; ``throughput`` runs N connections
concurrently for a fixed time. Requests are prepared once, so the client adds little per request.
"""

from __future__ import annotations

import asyncio
import http.client
import itertools
import statistics
import time
from dataclasses import dataclass, field


def request_bytes(path: str, body: bytes, headers: dict[str, str], port: int | None = None) -> bytes:
    """One POST as bytes; ``port`` goes into the Host header, which a SigV4 signature covers."""
    host = f"127.0.0.1:{port}" if port else "127.0.0.1"
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def latencies(port: int, path: str, body: bytes, headers: dict[str, str], count: int, warmup: int = 200) -> list[float]:
    """Milliseconds per request, one connection, one request at a time."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times = []
    for i in range(warmup + count):
        started = time.perf_counter()
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status} during the latency run")
        if i >= warmup:
            times.append(elapsed)
    conn.close()
    return times


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


@dataclass
class LoadResult:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    sent: int = 0

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def summary(self) -> dict:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "req_per_s": round(self.per_second),
            "p50_ms": round(statistics.median(self.latencies_ms), 3) if self.latencies_ms else None,
            "p99_ms": round(percentile(self.latencies_ms, 99), 3) if self.latencies_ms else None,
        }


async def _worker(port: int, next_request, deadline: float, result: LoadResult) -> None:
    """Send what ``next_request()`` gives (None: stop) on one keep-alive connection until ``deadline``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline:
            payload = next_request()
            if payload is None:
                break
            started = time.perf_counter()
            writer.write(payload)
            status_line = await reader.readline()
            status = int(status_line.split()[1])
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            result.latencies_ms.append((time.perf_counter() - started) * 1000)
            result.requests += 1
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if status != 200:
                result.errors += 1
    finally:
        writer.close()


def _run(coroutine_factory) -> None:
    try:
        import uvloop

        uvloop.run(coroutine_factory())
    except ImportError:
        asyncio.run(coroutine_factory())


def replay(port: int, requests, connections: int, seconds: float) -> LoadResult:
    """Send the prepared requests of the iterable ``requests`` in its order, over ``connections``
    keep-alive connections, until it ends or ``seconds`` pass; ``result.sent`` counts how many
    were taken from it (the order the service received them in, give or take the connections)."""
    result = LoadResult()
    iterator = iter(requests)

    def next_request():
        payload = next(iterator, None)
        if payload is not None:
            result.sent += 1
        return payload

    async def run():
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()
        await asyncio.gather(*(_worker(port, next_request, deadline, result) for _ in range(connections)))
        result.seconds = time.perf_counter() - started

    _run(run)
    return result


def throughput(port: int, payloads: list[bytes], connections: int, seconds: float) -> LoadResult:
    """Send prepared requests, round robin, over ``connections`` keep-alive connections for ``seconds``."""
    return replay(port, itertools.cycle(payloads), connections, seconds)
