"""A soak: several load processes keep an endpoint busy for a while, and the service's memory is
watched. Used by ``bench_soak.py`` (60 s, the figures in the README) and by a short test.
"""

from __future__ import annotations

import multiprocessing
import time

import httpload
import psutil


def _load_process(port: int, payloads: list[bytes], connections: int, seconds: float) -> dict:
    result = httpload.throughput(port, payloads, connections, seconds)
    return {
        "requests": result.requests,
        "errors": result.errors,
        "statuses": result.statuses,
        "seconds": result.seconds,
        "latencies_ms": result.latencies_ms,
    }


def soak(port: int, pid: int, payloads: list[bytes], seconds: float, processes: int = 3, connections: int = 4) -> dict:
    """``processes`` × ``connections`` keep-alive connections send ``payloads`` round robin for
    ``seconds``; the service's RSS is sampled every half second."""
    service = psutil.Process(pid)
    context = multiprocessing.get_context("spawn")
    samples: list[tuple[float, int]] = []
    with context.Pool(processes) as pool:
        started = time.perf_counter()
        pending = [pool.apply_async(_load_process, (port, payloads, connections, seconds)) for _ in range(processes)]
        while not all(p.ready() for p in pending):
            samples.append((time.perf_counter() - started, service.memory_info().rss))
            time.sleep(0.5)
        results = [p.get() for p in pending]
    requests = sum(r["requests"] for r in results)
    statuses: dict[int, int] = {}
    for r in results:
        for status, count in r["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    latencies = [t for r in results for t in r["latencies_ms"]]
    elapsed = max(r["seconds"] for r in results)
    quarter = [rss for t, rss in samples if t >= elapsed / 4]  # after the warm-up
    return {
        "processes x connections": f"{processes} x {connections}",
        "seconds": round(elapsed, 1),
        "requests": requests,
        "errors": sum(r["errors"] for r in results),
        "statuses": statuses,
        "req_per_s": round(requests / elapsed),
        "p50_ms": round(httpload.percentile(latencies, 50), 3) if latencies else None,
        "p99_ms": round(httpload.percentile(latencies, 99), 3) if latencies else None,
        "rss_mb_after_warmup": round(quarter[0] / 2**20, 1) if quarter else None,
        "rss_mb_at_end": round(samples[-1][1] / 2**20, 1) if samples else None,
        "rss_growth_mb_after_warmup": round((max(quarter) - quarter[0]) / 2**20, 1) if quarter else None,
    }
