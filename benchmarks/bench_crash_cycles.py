"""Crash cycles (local mode, loopback only): start the service, write to it from several writers
(boto3-signed, SigV4-presigned and SigV2-presigned PUTs and DELETEs, urllib-style form bodies
among them), ``kill -9`` it mid-load, start it again and check that every acknowledged write is
there with its bytes and every acknowledged delete is absent. A request under way at the kill may
have landed or not: either is accepted for that key, nothing else.

    .venv/bin/python benchmarks/bench_crash_cycles.py [cycles] [seconds of load per cycle]   # default 10, 2
"""

from __future__ import annotations

import http.client
import os
import random
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import boto3
from botocore.config import Config

from mme_helpers.local import config, lifecycle

KEYS_PER_WRITER = 40
WRITERS = ("signed", "presigned-v4", "presigned-v2", "presigned-v4-form")


@dataclass
class Ledger:
    """What the service acknowledged for each key (bytes, or None: deleted), and the keys whose
    last request was under way at the kill (``maybe``: the value it would have left)."""

    acknowledged: dict[str, bytes | None] = field(default_factory=dict)
    maybe: dict[str, bytes | None] = field(default_factory=dict)
    puts: int = 0
    deletes: int = 0
    by_writer: dict[str, int] = field(default_factory=dict)  # acknowledged requests of each kind of writer


def _clients(info):
    session = boto3.session.Session(info.access_key_id, info.secret_access_key, region_name=info.region)
    once = {"retries": {"max_attempts": 1, "mode": "standard"}, "connect_timeout": 2, "read_timeout": 10}
    return (
        session.client("s3", endpoint_url=info.url, config=Config(**once)),
        session.client("s3", endpoint_url=info.url, config=Config(signature_version="s3v4", **once)),
    )


def _send(url: str, method: str, body: bytes | None, headers: dict[str, str]) -> int:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request(method, f"{parts.path}?{parts.query}", body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _write(kind: str, info, clients, bucket: str, key: str, value: bytes | None) -> bool:
    """One PUT (value) or DELETE (None) of ``key`` the ``kind`` way; True if acknowledged."""
    s3_v2, s3_v4 = clients
    if kind == "signed":
        if value is None:
            s3_v4.delete_object(Bucket=bucket, Key=key)
        else:
            s3_v4.put_object(Bucket=bucket, Key=key, Body=value)
        return True
    presigner = s3_v2 if kind == "presigned-v2" else s3_v4
    operation = "delete_object" if value is None else "put_object"
    url = presigner.generate_presigned_url(operation, Params={"Bucket": bucket, "Key": key}, ExpiresIn=600)
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if kind == "presigned-v4-form" and value else {}
    status = _send(url, "DELETE" if value is None else "PUT", value, headers)
    return status in (200, 204)


def _writer(kind, info, bucket, ledger: Ledger, lock, stop: threading.Event, ready: threading.Barrier, seed: int) -> None:
    rng = random.Random(seed)
    clients = _clients(info)
    ready.wait()  # the load (and the clock to the kill) starts once every writer has its clients
    sequence = 0
    while not stop.is_set():
        key = f"{kind}/key-{rng.randrange(KEYS_PER_WRITER):03d}"
        sequence += 1
        value = None if rng.random() < 0.3 else f"{kind} {seed} {sequence} a=1&b=2 ".encode() * rng.randrange(1, 200)
        with lock:
            ledger.maybe[key] = value
        try:
            acknowledged = _write(kind, info, clients, bucket, key, value)
        except Exception:  # the service was killed under this request: it may or may not have landed
            return
        with lock:
            del ledger.maybe[key]
            if acknowledged:
                ledger.acknowledged[key] = value
                ledger.by_writer[kind] = ledger.by_writer.get(kind, 0) + 1
                if value is None:
                    ledger.deletes += 1
                else:
                    ledger.puts += 1


def check(info, bucket: str, ledger: Ledger) -> list[str]:
    """Every key as the ledger says (a key under way at the kill: either value); the problems."""
    s3 = boto3.session.Session(info.access_key_id, info.secret_access_key, region_name=info.region).client(
        "s3", endpoint_url=info.url
    )
    problems = []
    for key in sorted(set(ledger.acknowledged) | set(ledger.maybe)):
        try:
            found = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except s3.exceptions.NoSuchKey:
            found = None
        allowed = [ledger.acknowledged.get(key)]
        if key in ledger.maybe:
            allowed.append(ledger.maybe[key])
        if found not in allowed:
            shown = "absent" if found is None else f"{len(found)} bytes {found[:24]!r}"
            problems.append(f"{key}: {shown}, expected one of {[None if a is None else a[:24] for a in allowed]}")
        # what is there now is what the next cycle starts from
        ledger.acknowledged[key] = found
    ledger.maybe.clear()
    return problems


def run(home: Path, cycles: int, seconds: float, seed: int = 0) -> dict:
    """``cycles`` × (start, load, kill -9), then a last start and check; returns the figures."""
    rng = random.Random(seed)
    ledger = Ledger()
    lock = threading.Lock()
    problems: list[str] = []
    starts = []
    info = None
    for cycle in range(cycles):
        began = time.perf_counter()
        info, _ = lifecycle.start(home)
        starts.append(time.perf_counter() - began)
        bucket = config.default_bucket(info.region)
        problems += [f"cycle {cycle}: {p}" for p in check(info, bucket, ledger)]
        stop = threading.Event()
        ready = threading.Barrier(len(WRITERS) + 1)
        threads = [
            threading.Thread(
                target=_writer, args=(kind, info, bucket, ledger, lock, stop, ready, seed * 100 + cycle * 10 + n)
            )
            for n, kind in enumerate(WRITERS)
        ]
        for thread in threads:
            thread.start()
        ready.wait()
        time.sleep(seconds * rng.uniform(0.5, 1.0))  # the load runs; the kill comes at a random moment
        os.kill(info.pid, signal.SIGKILL)
        stop.set()
        for thread in threads:
            thread.join(30)
        while lifecycle._pid_alive(info.pid):
            time.sleep(0.02)
    info, _ = lifecycle.start(home)
    bucket = config.default_bucket(info.region)
    problems += [f"after the last kill: {p}" for p in check(info, bucket, ledger)]
    lifecycle.stop(home)
    return {
        "cycles": cycles,
        "acknowledged_puts": ledger.puts,
        "acknowledged_deletes": ledger.deletes,
        "by_writer": dict(ledger.by_writer),
        "keys": len(ledger.acknowledged),
        "present_at_end": sum(value is not None for value in ledger.acknowledged.values()),
        "start_s_median": sorted(starts)[len(starts) // 2],
        "problems": problems,
    }


def main(cycles: int, seconds: float) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        figures = run(Path(tmp) / "service", cycles, seconds)
        elapsed = time.perf_counter() - began
    print(
        f"{figures['cycles']} kill -9 / start cycles in {elapsed:.0f} s: {figures['acknowledged_puts']} acknowledged PUTs, "
        f"{figures['acknowledged_deletes']} acknowledged DELETEs over {figures['keys']} keys "
        f"({', '.join(f'{kind} {count}' for kind, count in figures['by_writer'].items())}); "
        f"start {figures['start_s_median']:.1f} s (median); "
        f"{len(figures['problems'])} lost or resurrected"
    )
    for problem in figures["problems"][:20]:
        print("  " + problem)
    return 1 if figures["problems"] else 0


if __name__ == "__main__":
    arguments = sys.argv[1:]
    sys.exit(main(int(arguments[0]) if arguments else 10, float(arguments[1]) if len(arguments) > 1 else 2.0))
