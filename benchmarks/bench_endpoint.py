"""Multi-model endpoint benchmark (local mode, loopback only): warm latency against a bare
predict-only server, throughput, cold starts from S3 and from the disk cache, memory per model.

    .venv/bin/python benchmarks/bench_endpoint.py            # about a minute
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import httpload  # noqa: E402

from mme_helpers import data  # noqa: E402
from mme_helpers.local import config, lifecycle  # noqa: E402
from mme_helpers.local.sagemaker import xgboost_algorithm  # noqa: E402
from mme_helpers.local.signed_http import signed_get, signed_headers  # noqa: E402

IMAGE = "246618743249.dkr.ecr.us-west-2.amazonaws.com/sagemaker-xgboost:1.7-1"
ROW = b"2005,3000,3,2.0,1.0,2\n"
WARM_ROUNDS, WARM_ROUND = 20, 300  # warm latency: rounds alternated between the service and the bare server
SEED_HYPERPARAMETERS = {
    "max_depth": "5",
    "eta": "0.2",
    "gamma": "4",
    "min_child_weight": "6",
    "subsample": "0.7",
    "objective": "reg:squarederror",
    "num_round": "50",
}


def seed_size_artifact() -> bytes:
    """A model trained exactly as the seed's (1,000 houses, 50 rounds, depth 5)."""
    split = data.location_split("Chicago_IL", 1000, 7)
    channels = {
        "train": [("train.csv", data.to_training_csv(split.train).encode())],
        "validation": [("val.csv", data.to_training_csv(split.val).encode())],
    }
    return xgboost_algorithm.train(channels, {"train": "text/csv", "validation": "text/csv"}, SEED_HYPERPARAMETERS).artifact


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class Bench:
    def __init__(self, home: Path):
        self.info, _ = lifecycle.start(home)
        session = boto3.session.Session(self.info.access_key_id, self.info.secret_access_key, region_name=self.info.region)
        self.sm = session.client("sagemaker", endpoint_url=self.info.url)
        self.s3 = session.client("s3", endpoint_url=self.info.url)
        self.bucket = config.default_bucket(self.info.region)
        self.runtime = session.client("sagemaker-runtime", endpoint_url=self.info.url)

    def signed(self, endpoint: str, target: str) -> dict[str, str]:
        """Headers of one invocation, signed as boto3 signs it. The service checks the signature of
        every request; a signed request may be sent again within AWS's 15 minutes, as here."""
        headers = {"Content-Type": "text/csv", "X-Amzn-SageMaker-Target-Model": target}
        url = self.info.url + self.path(endpoint)
        return signed_headers(
            self.info.access_key_id, self.info.secret_access_key, self.info.region, "POST", url, ROW, headers
        )

    def endpoint(self, name: str, environment: dict | None = None) -> str:
        prefix = f"bench/{name}/"
        self.sm.create_model(
            ModelName=name,
            ExecutionRoleArn=config.ROLE_ARN,
            PrimaryContainer={
                "Image": IMAGE,
                "Mode": "MultiModel",
                "ModelDataUrl": f"s3://{self.bucket}/{prefix}",
                "Environment": environment or {},
            },
        )
        self.sm.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.xlarge"}
            ],
        )
        self.sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
        self.sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig={"Delay": 0.2})
        return prefix

    def warm_endpoint(self, name: str, artifact: bytes, count: int) -> list[str]:
        """An endpoint with ``count`` copies of ``artifact``, each invoked once (loaded)."""
        prefix = self.endpoint(name)
        keys = [f"m{i:02d}.tar.gz" for i in range(count)]
        self.upload(prefix, keys, artifact)
        for key in keys:
            self.call(name, key)
        return keys

    def upload(self, prefix: str, keys: list[str], artifact: bytes) -> None:
        for key in keys:
            self.s3.put_object(Bucket=self.bucket, Key=prefix + key, Body=artifact)

    def path(self, endpoint: str) -> str:
        return f"/endpoints/{endpoint}/invocations"

    def call(self, endpoint: str, target: str) -> float:
        return httpload.latencies(self.info.port, self.path(endpoint), ROW, self.signed(endpoint, target), 1, warmup=0)[0]

    def boto3_latencies(self, endpoint: str, target: str, count: int, warmup: int = 200) -> list[float]:
        """Milliseconds per ``invoke_endpoint`` through boto3: serialization, signing and parsing
        of every request included, as an application pays them."""
        times = []
        for i in range(warmup + count):
            started = time.perf_counter()
            self.runtime.invoke_endpoint(EndpointName=endpoint, TargetModel=target, ContentType="text/csv", Body=ROW)[
                "Body"
            ].read()
            if i >= warmup:
                times.append((time.perf_counter() - started) * 1000)
        return times

    def state(self, endpoint: str) -> dict:
        status, answer = signed_get(
            self.info.url,
            f"/_local/endpoints/{endpoint}/models",
            self.info.access_key_id,
            self.info.secret_access_key,
            self.info.region,
        )
        assert status == 200, answer
        return answer


def main() -> None:
    artifact = seed_size_artifact()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "service"
        bench = Bench(home)
        try:
            # warm latency, against the bare server, in the same run ----------------------------------
            warm_keys = bench.warm_endpoint("warm", artifact, 20)
            headers = bench.signed("warm", warm_keys[0])
            model_file = Path(tmp) / "xgboost-model"
            import io
            import tarfile

            with tarfile.open(fileobj=io.BytesIO(artifact)) as archive:
                model_file.write_bytes(archive.extractfile("xgboost-model").read())
            port = free_port()
            bare = subprocess.Popen(
                [sys.executable, str(Path(__file__).parent / "bare_server.py"), str(model_file), str(port)]
            )
            try:
                wait_port(port)
                # 20 short rounds, alternated, so that both see the same machine: this 2-core VM has
                # slow spells of a second or two, which long rounds give to one side only
                service_ms, bare_ms, bare_same_ms = [], [], []
                for _ in range(WARM_ROUNDS):
                    service_ms += httpload.latencies(bench.info.port, bench.path("warm"), ROW, headers, WARM_ROUND, 20)
                    bare_ms += httpload.latencies(port, "/", ROW, {"Content-Type": "text/csv"}, WARM_ROUND, 20)
                    bare_same_ms += httpload.latencies(port, bench.path("warm"), ROW, headers, WARM_ROUND, 20)
                bare_load = httpload.throughput(port, [httpload.request_bytes("/", ROW, {"Content-Type": "text/csv"})], 8, 5)
            finally:
                bare.terminate()
                bare.wait()
            results["warm latency (1 connection, signature checked on every request)"] = {
                "service p50 ms": round(statistics.median(service_ms), 3),
                "service p99 ms": round(httpload.percentile(service_ms, 99), 3),
                "bare server p50 ms": round(statistics.median(bare_ms), 3),
                "ratio": round(statistics.median(service_ms) / statistics.median(bare_ms), 2),
                # the bare server sent the very request the service gets (its signature headers unread)
                "ratio, same request": round(statistics.median(service_ms) / statistics.median(bare_same_ms), 2),
            }
            through_boto3 = bench.boto3_latencies("warm", warm_keys[0], 2000)
            results["warm latency through boto3 (signs and parses every request)"] = {
                "p50 ms": round(statistics.median(through_boto3), 3),
                "p99 ms": round(httpload.percentile(through_boto3, 99), 3),
            }

            # throughput: 8 connections over 20 models ----------------------------------------------------------
            payloads = [
                httpload.request_bytes(bench.path("warm"), ROW, bench.signed("warm", k), bench.info.port) for k in warm_keys
            ]
            load = httpload.throughput(bench.info.port, payloads, 8, 10)
            results["throughput (8 connections, 20 models, 10 s)"] = {
                **load.summary(),
                "bare server req/s": round(bare_load.per_second),
            }

            # cold from S3: a model's first request ---------------------------------------------------------------
            prefix = bench.endpoint("cold")
            cold_keys = [f"c{i:02d}.tar.gz" for i in range(60)]
            bench.upload(prefix, cold_keys, artifact)
            cold = [bench.call("cold", key) for key in cold_keys]
            results["cold start, model not on disk (60 models)"] = {
                "p50 ms": round(statistics.median(cold), 2),
                "p90 ms": round(httpload.percentile(cold, 90), 2),
            }

            # cold from the disk cache: memory for one model only, so every switch reloads from disk ---------
            cold_state = bench.state("cold")  # an instance type's budget: each model is also charged its worker
            model_size = cold_state["models"][0]["memory_bytes"] - cold_state["worker_bytes"]
            prefix = bench.endpoint("disk", {"MME_LOCAL_MEMORY_BUDGET_MB": str(1.5 * model_size / 1e6)})
            disk_keys = [f"d{i:02d}.tar.gz" for i in range(30)]
            bench.upload(prefix, disk_keys, artifact)
            for key in disk_keys:
                bench.call("disk", key)  # downloads every model once; each load evicts the previous one
            from_disk = [bench.call("disk", key) for key in disk_keys]
            state = {m["target"]: m for m in bench.state("disk")["models"]}
            assert all(state[k]["loads"] == 2 and state[k]["misses"] == 2 for k in disk_keys), "not a disk reload"
            results["cold start from the disk cache (30 models)"] = {
                "p50 ms": round(statistics.median(from_disk), 2),
                "p90 ms": round(httpload.percentile(from_disk, 90), 2),
            }

            # memory per loaded seed-size model --------------------------------------------------------------------
            prefix = bench.endpoint("memory")
            memory_keys = [f"r{i:03d}.tar.gz" for i in range(500)]
            bench.upload(prefix, memory_keys, artifact)
            process = psutil.Process(bench.info.pid)
            bench.call("memory", memory_keys[0])
            before = process.memory_info().rss
            for key in memory_keys[1:]:
                bench.call("memory", key)
            after = process.memory_info().rss
            loaded = len(bench.state("memory")["loaded_models"])
            results["memory per loaded seed-size model"] = {
                "models loaded": loaded,
                "MB per model": round((after - before) / (loaded - 1) / 1e6, 3),
                "artifact KB": round(len(artifact) / 1024, 1),
                "loaded model KB (counted)": round(model_size / 1024, 1),
            }
        finally:
            lifecycle.stop(home)

    print(f"Endpoint benchmark, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    for name, figures in results.items():
        print(f"\n{name}")
        for key, value in figures.items():
            print(f"  {key:>22}: {value}")


if __name__ == "__main__":
    main()
