"""What fsync costs the state store (local mode, loopback only): every S3 write the service
acknowledges is first written to ``state/`` by ``StateStore.save_object`` (data file and record, each
fsynced, then their folder). This times that write with fsync and with fsync made a no-op, for
1,000 small objects and 100 × 1 MB, then PUTs the same through a running service (with fsync), so
that the store's share of a PUT is visible.

    .venv/bin/python benchmarks/bench_state_writes.py [--no-service]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from mme_helpers.local.state import StateStore

CASES = [("1,000 × 1 KB", 1000, 1024), ("100 × 1 MB", 100, 1 << 20)]


@contextmanager
def fsync_disabled():
    real = os.fsync
    os.fsync = lambda fd: None
    try:
        yield
    finally:
        os.fsync = real


def time_store(count: int, size: int) -> float:
    payload = os.urandom(size)
    with tempfile.TemporaryDirectory(dir=os.environ.get("MME_BENCH_DIR")) as tmp:
        store = StateStore(Path(tmp))
        start = time.perf_counter()
        for number in range(count):
            store.save_object("bench", f"objects/{number:05d}.bin", payload, {"content-type": "application/octet-stream"})
        return time.perf_counter() - start


def time_service_puts(count: int, size: int) -> float:
    import boto3

    from mme_helpers.local import config, lifecycle

    payload = os.urandom(size)
    with tempfile.TemporaryDirectory(dir=os.environ.get("MME_BENCH_DIR")) as tmp:
        home = Path(tmp)
        info, _ = lifecycle.start(home)
        try:
            s3 = boto3.session.Session(info.access_key_id, info.secret_access_key, region_name=info.region).client(
                "s3", endpoint_url=info.url
            )
            bucket = config.default_bucket(info.region)
            start = time.perf_counter()
            for number in range(count):
                s3.put_object(Bucket=bucket, Key=f"objects/{number:05d}.bin", Body=payload)
            return time.perf_counter() - start
        finally:
            lifecycle.stop(home)


def main(with_service: bool) -> None:
    print(f"state store writes (folder: {os.environ.get('MME_BENCH_DIR') or tempfile.gettempdir()})")
    for label, count, size in CASES:
        synced = time_store(count, size)
        with fsync_disabled():
            unsynced = time_store(count, size)
        print(
            f"  {label:>14}: with fsync {synced:6.2f} s ({synced / count * 1000:6.2f} ms each), "
            f"without {unsynced:6.2f} s ({unsynced / count * 1000:6.2f} ms each): "
            f"+{(synced - unsynced) / count * 1000:.2f} ms per object"
        )
    if with_service:
        print("PUTs through the running service (boto3, one at a time, fsync on)")
        for label, count, size in CASES:
            elapsed = time_service_puts(count, size)
            print(f"  {label:>14}: {elapsed:6.2f} s ({elapsed / count * 1000:6.2f} ms per PUT)")


if __name__ == "__main__":
    main(with_service="--no-service" not in sys.argv[1:])
