"""Thousands of models behind one endpoint (local mode, loopback only).

For 100, 1,000 and 10,000 models (copies of one artifact, so that every model takes the same
memory) behind one endpoint with a 1 GiB memory budget, a seeded Zipf stream of signed requests is
replayed over 8 connections; the endpoint's hit ratio is set beside an exact LRU simulation of the
same stream, and the service's RSS is watched.

    .venv/bin/python benchmarks/bench_scale.py              # 10,000 models for 60 s; the others 20 s
    .venv/bin/python benchmarks/bench_scale.py 100 1000     # only these sizes
"""

from __future__ import annotations

import concurrent.futures
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import httpload  # noqa: E402
from bench_endpoint import ROW, Bench  # noqa: E402

from mme_helpers import data  # noqa: E402
from mme_helpers.eviction import capacity_in_models, simulate_lru  # noqa: E402
from mme_helpers.local import lifecycle  # noqa: E402
from mme_helpers.local.sagemaker import xgboost_algorithm  # noqa: E402

BUDGET_BYTES = 2**30  # 1 GiB (MME_LOCAL_MEMORY_BUDGET_MB is in decimal MB); RSS is reported in MiB too
ZIPF_EXPONENT = 1.1
SEED = 11
# A model a little larger than the seed's (more, deeper trees): 10,000 of them do not fit in 1 GB.
HYPERPARAMETERS = {"max_depth": "6", "eta": "0.1", "objective": "reg:squarederror", "num_round": "120"}


def artifact() -> bytes:
    split = data.location_split("Chicago_IL", 2000, 7)
    channels = {"train": [("train.csv", data.to_training_csv(split.train).encode())]}
    return xgboost_algorithm.train(channels, {"train": "text/csv"}, HYPERPARAMETERS).artifact


def zipf_stream(models: int, length: int, seed: int = SEED) -> np.ndarray:
    """Model numbers drawn with probability ∝ 1 / rank^s, ranks shuffled so that popular models are
    spread over the key space."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, models + 1) ** ZIPF_EXPONENT
    ranks = rng.choice(models, size=length, p=weights / weights.sum())
    return rng.permutation(models)[ranks]


def run(bench: Bench, blob: bytes, models: int, seconds: float) -> dict:
    name = f"scale{models}"
    prefix = bench.endpoint(name, {"MME_LOCAL_MEMORY_BUDGET_MB": str(BUDGET_BYTES / 10**6)})
    keys = [f"m{i:05d}.tar.gz" for i in range(models)]
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: bench.s3.put_object(Bucket=bench.bucket, Key=prefix + key, Body=blob), keys))
    upload_s = time.perf_counter() - started
    bench.call(name, keys[0])
    first = bench.state(name)["models"][0]
    memory_bytes, hits_before, misses_before = first["memory_bytes"], first["hits"], first["misses"]
    capacity = capacity_in_models(BUDGET_BYTES, memory_bytes)
    payloads = [httpload.request_bytes(bench.path(name), ROW, bench.signed(name, key), bench.info.port) for key in keys]
    stream = zipf_stream(models, 2_000_000)

    process = psutil.Process(bench.info.pid)
    rss = [process.memory_info().rss]
    done = threading.Event()

    def watch():
        while not done.wait(0.5):
            rss.append(process.memory_info().rss)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    result = httpload.replay(bench.info.port, (payloads[i] for i in stream), connections=8, seconds=seconds)
    done.set()
    watcher.join()

    state = bench.state(name)
    hits = sum(m["hits"] for m in state["models"]) - hits_before
    misses = sum(m["misses"] for m in state["models"]) - misses_before
    simulated = simulate_lru([keys[i] for i in stream[: result.sent]], capacity, loaded=[keys[0]])["lru says"]
    endpoint_ratio = hits / (hits + misses)
    lru_ratio = float((simulated == "hit").mean())
    bench.sm.delete_endpoint(EndpointName=name)
    return {
        "models": models,
        "fit in 1 GB": capacity,
        "upload s": round(upload_s, 1),
        "seconds": round(result.seconds, 1),
        "requests": result.requests,
        "errors": result.errors,
        "req/s": round(result.per_second),
        "p50 ms": round(httpload.percentile(result.latencies_ms, 50), 2),
        "p99 ms": round(httpload.percentile(result.latencies_ms, 99), 2),
        "hit ratio, endpoint": round(endpoint_ratio * 100, 2),
        "hit ratio, exact LRU": round(lru_ratio * 100, 2),
        "difference (points)": round((endpoint_ratio - lru_ratio) * 100, 2),
        "max RSS MiB": round(max(rss) / 2**20),
        "RSS over budget MiB": round((max(rss) - BUDGET_BYTES) / 2**20),
        "loaded at the end": len(state["loaded_models"]),
    }


def main(sizes: list[int]) -> None:
    blob = artifact()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "service"
        bench = Bench(home)
        try:
            for models in sizes:
                rows.append(run(bench, blob, models, 60.0 if models >= 10_000 else 20.0))
                print(rows[-1], flush=True)
        finally:
            lifecycle.stop(home)
    print(
        f"\nScale benchmark, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}, artifact {len(blob) / 1024:.0f} KB, "
        f"budget {BUDGET_BYTES / 2**30:g} GiB, Zipf s={ZIPF_EXPONENT}, 8 connections"
    )
    columns = list(rows[0])
    print(" | ".join(columns))
    for row in rows:
        print(" | ".join(str(row[c]) for c in columns))


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [100, 1000, 10000])
