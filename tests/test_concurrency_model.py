"""Rows of the README's concurrency table not covered elsewhere: where an invocation's payload is
parsed and predicted (on the loop up to 64 KB, in a thread beyond), and training workers kept from
job to job, a stopped job's worker ended and replaced."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from pathlib import Path

import numpy as np
from conftest import unique, wait_until

from mme_helpers.local.runtime.invocations import InvocationHandler

ROW = b"1,2,3,4,5,6\n"  # 12 bytes


class ThreadRecordingModel:
    """A six-feature model that notes the thread each prediction runs on."""

    num_features = 6

    def __init__(self):
        self.threads: list[str] = []

    def predict(self, features):
        self.threads.append(threading.current_thread().name)
        return np.zeros(features.shape[0])


def test_payloads_up_to_64_kb_are_predicted_on_the_loop_larger_ones_in_a_thread():
    executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="predict")
    handler = InvocationHandler(backend=None, metrics=None, region="us-west-2", executor=executor)
    model = ThreadRecordingModel()
    small, large = ROW * (65536 // len(ROW)), ROW * (65536 // len(ROW) + 1)
    assert len(small) <= 65536 < len(large)

    async def both():
        loop_thread = threading.current_thread().name
        await handler._predict(model, small, "text/csv")
        await handler._predict(model, large, "text/csv")
        return loop_thread

    try:
        loop_thread = asyncio.run(both())
    finally:
        executor.shutdown()
    assert model.threads[0] == loop_thread
    assert model.threads[1].startswith("predict")


# training workers -------------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return tree


def training_workers(service_pid: int) -> set[int]:
    """The service's training worker processes: children of its multiprocessing fork server."""
    tree = _children()
    workers: set[int] = set()
    for child in tree.get(service_pid, []):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"forkserver" in command:
            workers |= set(tree.get(child, []))
    return workers


def start_job(ctx, clients, rounds: int, depth: int = 3) -> str:
    rng = np.random.default_rng(5)
    x = rng.random((300, 6))
    csv = "\n".join(",".join(f"{v:.5f}" for v in (row.sum(), *row)) for row in x)
    name = unique("workers")
    clients.s3.put_object(Bucket=ctx.bucket, Key=f"tests/{name}/train/train.csv", Body=csv.encode())
    clients.sagemaker.create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={
            "TrainingImage": "246618743249.dkr.ecr.us-west-2.amazonaws.com/sagemaker-xgboost:1.7-1",
            "TrainingInputMode": "File",
        },
        RoleArn=ctx.role,
        HyperParameters={"num_round": str(rounds), "max_depth": str(depth), "objective": "reg:squarederror"},
        InputDataConfig=[
            {
                "ChannelName": "train",
                "ContentType": "text/csv",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{ctx.bucket}/tests/{name}/train"}},
            }
        ],
        OutputDataConfig={"S3OutputPath": f"s3://{ctx.bucket}/tests/{name}/output"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
    )
    return name


def status(clients, name: str) -> dict:
    return clients.sagemaker.describe_training_job(TrainingJobName=name)


def outcome(clients, name: str) -> str:
    job = wait_until(lambda: (described := status(clients, name))["TrainingJobStatus"] != "InProgress" and described)
    return job["TrainingJobStatus"]


def test_training_workers_are_kept_from_job_to_job_and_a_stopped_jobs_worker_is_replaced(ctx, clients, service):
    seen = []
    for _ in range(3):  # one job at a time: each finds the workers the earlier ones left
        assert outcome(clients, start_job(ctx, clients, rounds=5)) == "Completed"
        seen.append(training_workers(service.pid))
    assert seen[0], "no worker left after a job: a process per job"
    assert seen[0] <= seen[1] <= seen[2], seen  # no worker ended between jobs
    assert len(seen[2]) <= (os.cpu_count() or 1)  # one per core at most

    name = start_job(ctx, clients, rounds=1_000_000, depth=10)
    wait_until(lambda: status(clients, name)["SecondaryStatus"] == "Training")
    during = training_workers(service.pid)
    clients.sagemaker.stop_training_job(TrainingJobName=name)
    wait_until(lambda: status(clients, name)["TrainingJobStatus"] == "Stopped")
    ended = during - training_workers(service.pid)
    assert len(ended) == 1, (during, ended)  # the stopped job's worker, terminated
    assert outcome(clients, start_job(ctx, clients, rounds=5)) == "Completed"  # its slot trains the next job
