"""Soak (local mode, loopback only): 60 s of signed invocations from several processes over 20
warm models, then 0 errors and flat memory are what to look for.

    .venv/bin/python benchmarks/bench_soak.py [seconds]        # default 60
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import httpload  # noqa: E402
from bench_endpoint import ROW, Bench, seed_size_artifact  # noqa: E402
from soak import soak  # noqa: E402

from mme_helpers.local import lifecycle  # noqa: E402


def main(seconds: float) -> None:
    artifact = seed_size_artifact()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "service"
        bench = Bench(home)
        try:
            keys = bench.warm_endpoint("soak", artifact, 20)
            payloads = [
                httpload.request_bytes(bench.path("soak"), ROW, bench.signed("soak", k), bench.info.port) for k in keys
            ]
            figures = soak(bench.info.port, bench.info.pid, payloads, seconds)
        finally:
            lifecycle.stop(home)
    print(f"Soak benchmark, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    for key, value in figures.items():
        print(f"  {key:>28}: {value}")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0)
