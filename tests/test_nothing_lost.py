"""Nothing acknowledged is lost: presigned writes (SigV2 and SigV4, any content type) survive a
kill -9; one key's writes land on disk in the order moto applied them; files and folders are
fsynced; requests wait (503, retried by boto3) until the state is restored; endpoint caches do not
leak; SIGTERM stops the service in order; every region starts."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from conftest import model_tar, train_booster, wait_until

from mme_helpers.local import config, lifecycle
from mme_helpers.local.s3_mirror import S3Change, S3Mirror
from mme_helpers.local.state import StateStore

IMAGE = "246618743249.dkr.ecr.us-west-2.amazonaws.com/sagemaker-xgboost:1.7-1"


@pytest.fixture
def home(tmp_path):
    yield tmp_path
    lifecycle.stop(tmp_path)


def session(info):
    return boto3.session.Session(info.access_key_id, info.secret_access_key, region_name=info.region)


def client(info, name, **options):
    return session(info).client(name, endpoint_url=info.url, config=Config(**options))


def kill_and_restart(home, info):
    os.kill(info.pid, signal.SIGKILL)
    wait_until(lambda: not lifecycle._pid_alive(info.pid), timeout=10)
    restarted, started = lifecycle.start(home)
    assert started
    return restarted


def put_raw(url: str, body: bytes, headers: dict[str, str]) -> int:
    """A PUT exactly as given (no Content-Type unless given), as curl would send it."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("PUT", f"{parts.path}?{parts.query}", body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def make_endpoint(info, bucket, name):
    s3, sagemaker = client(info, "s3"), client(info, "sagemaker")
    s3.put_object(Bucket=bucket, Key=f"{name}/m.tar.gz", Body=model_tar(train_booster(rounds=2)))
    sagemaker.create_model(
        ModelName=name,
        ExecutionRoleArn=config.ROLE_ARN,
        PrimaryContainer={"Image": IMAGE, "Mode": "MultiModel", "ModelDataUrl": f"s3://{bucket}/{name}/"},
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
        ],
    )
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sagemaker.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig={"Delay": 0.2})
    runtime = client(info, "sagemaker-runtime")
    runtime.invoke_endpoint(EndpointName=name, TargetModel="m.tar.gz", ContentType="text/csv", Body="1,2,3,4,5,6")


def cache_folders(home: Path) -> list[str]:
    folder = home / "endpoints"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_presigned_puts_survive_a_kill_and_endpoint_caches_do_not_leak(home):
    info, _ = lifecycle.start(home)
    bucket = config.default_bucket(info.region)
    make_endpoint(info, bucket, "kept")
    assert len(cache_folders(home)) == 1

    # boto3's default presigned PUT for S3 is the query-string SigV2 form; no Content-Type is signed
    v2_url = client(info, "s3").generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "v2.txt"})
    assert "AWSAccessKeyId=" in v2_url and "X-Amz-Credential" not in v2_url
    assert put_raw(v2_url, b"sent with SigV2", {}) == 200
    # SigV4 presigned, sent as urllib (and curl -d) send it: as a form
    v4_url = client(info, "s3", signature_version="s3v4").generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "form.txt"}
    )
    with urllib.request.urlopen(urllib.request.Request(v4_url, data=b"a=1&b=2 is the body", method="PUT")) as answer:
        assert answer.status == 200
    s3 = client(info, "s3")
    assert s3.get_object(Bucket=bucket, Key="form.txt")["Body"].read() == b"a=1&b=2 is the body"

    info = kill_and_restart(home, info)
    s3 = client(info, "s3")
    assert s3.get_object(Bucket=bucket, Key="v2.txt")["Body"].read() == b"sent with SigV2"
    kept = s3.get_object(Bucket=bucket, Key="form.txt")
    assert kept["Body"].read() == b"a=1&b=2 is the body"
    assert kept["ContentType"] == "application/x-www-form-urlencoded"  # as S3 keeps it
    # the killed service's cache folder is gone; the restored endpoint has one new folder
    client(info, "sagemaker").get_waiter("endpoint_in_service").wait(EndpointName="kept", WaiterConfig={"Delay": 0.2})
    assert len(cache_folders(home)) == 1

    lifecycle.reset(home)
    assert cache_folders(home) == []


# one key's writes land in the order moto applied them ------------------------------------------------


class GatedStore(StateStore):
    """A store whose first object write waits at a gate (a slow disk, deterministically)."""

    def __init__(self, home):
        super().__init__(home)
        self.writing = threading.Event()
        self.gate = threading.Event()
        self.first = True

    def save_object(self, bucket, key, data, metadata):
        if self.first:
            self.first = False
            self.writing.set()
            assert self.gate.wait(30)
        super().save_object(bucket, key, data, metadata)


@pytest.fixture
def moto_s3():
    from moto.s3.models import s3_backends

    backend = s3_backends[config.ACCOUNT_ID]["aws"]
    backend.create_bucket("ordered", "us-west-2")
    yield backend
    for key in list(backend.buckets["ordered"].keys.keys()):
        backend.delete_object("ordered", key)
    backend.delete_bucket("ordered")


@pytest.mark.parametrize("second", ["put", "delete"])
def test_one_keys_writes_land_in_the_order_moto_applied_them(tmp_path, moto_s3, second):
    store = GatedStore(tmp_path)
    mirror = S3Mirror(store)
    moto_s3.put_object("ordered", "k", b"first")
    first = threading.Thread(target=mirror.apply, args=(S3Change("save-object", "ordered", "k"),))
    first.start()
    assert store.writing.wait(30)  # the first writer has read "first" and is writing it
    if second == "put":
        moto_s3.put_object("ordered", "k", b"second")
        change = S3Change("save-object", "ordered", "k")
    else:
        moto_s3.delete_object("ordered", "k")
        change = S3Change("drop-object", "ordered", "k")
    later = threading.Thread(target=mirror.apply, args=(change,))
    later.start()
    later.join(timeout=1.0)  # unordered, the later write lands now; ordered, it waits for the first
    store.gate.set()
    first.join(30)
    later.join(30)
    on_disk = {key: data.read_bytes() for key, data, _ in store.objects("ordered")}
    assert on_disk == ({"k": b"second"} if second == "put" else {})


# fsync ---------------------------------------------------------------------------------------------


def test_saved_files_and_their_folders_are_fsynced(tmp_path, monkeypatch):
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    store = StateStore(tmp_path)
    store.save_object("b", "k", b"data", {})
    folder = store.s3 / os.listdir(store.s3)[0] / "objects"
    for path in sorted(folder.iterdir()):  # the data file and its record
        # written under a temporary name, synced, renamed into place, and the rename synced
        written = next(i for i, p in enumerate(synced) if p.startswith(f"{folder}/.{path.name}."))
        assert str(folder) in synced[written + 1 :]
    assert str(folder.parent) in synced and str(store.s3) in synced  # the new folders' entries too
    synced.clear()
    store.drop_object("b", "k")
    assert synced == [str(folder)] and not any(folder.iterdir())
    synced.clear()
    store.save_resource("Model", "m", {"name": "m"})
    assert str(store.sagemaker / "Model") in synced


# until its state is restored, the service answers 503 (boto3 retries) --------------------------------


def test_requests_wait_until_the_state_is_restored(tmp_path):
    """Run in this process (uvicorn in a thread), so that the restore can be held at a gate."""
    import uvicorn

    from mme_helpers.local.server import LocalAWS

    store = StateStore(tmp_path)
    store.save_bucket("restored", "us-west-2")
    store.save_object("restored", "k", b"old, from before the restart", {})
    sock = socket.socket()
    sock.bind((config.HOST, 0))
    sock.listen(64)
    info = config.ServiceInfo(
        pid=os.getpid(),
        port=sock.getsockname()[1],
        region="us-west-2",
        access_key_id="AKIDLOCALTESTRESTORE",
        secret_access_key="restore-secret",
        started_at=time.time(),
        home=str(tmp_path),
    )
    app = LocalAWS(info, tmp_path, training_workers=1)
    restoring, gate = threading.Event(), threading.Event()
    restore = app.s3_mirror.restore

    def slow_restore():
        restoring.set()
        assert gate.wait(60)
        return restore()

    app.s3_mirror.restore = slow_restore
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        assert restoring.wait(60)
        s3_once = client(info, "s3", retries={"max_attempts": 1, "mode": "standard"})
        with pytest.raises(ClientError) as refused:
            s3_once.put_object(Bucket="restored", Key="k", Body=b"new")
        error = refused.value.response
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 503 and error["Error"]["Code"] == "ServiceUnavailable"
        assert int(error["ResponseMetadata"]["HTTPHeaders"]["retry-after"]) >= 1
        sagemaker_once = client(info, "sagemaker", retries={"max_attempts": 1, "mode": "standard"})
        with pytest.raises(ClientError) as refused:
            sagemaker_once.list_models()
        assert refused.value.response["Error"]["Code"] == "ServiceUnavailable"

        # boto3's own retries carry a write over the restore; the restored object does not overwrite it
        s3 = client(info, "s3", retries={"max_attempts": 10, "mode": "standard"})
        refusals = []

        def on_response(response=None, **_):
            if response is not None and response[0].status_code == 503:
                refusals.append(503)
                gate.set()  # the restore finishes once the writer has been told to wait

        s3.meta.events.register("needs-retry.s3.PutObject", on_response)
        s3.put_object(Bucket="restored", Key="k", Body=b"new")
        assert refusals and gate.is_set()
        assert s3.get_object(Bucket="restored", Key="k")["Body"].read() == b"new"
        assert dict(client(info, "s3").list_objects_v2(Bucket="restored"))["KeyCount"] == 1
    finally:
        gate.set()
        server.should_exit = True
        thread.join(60)


# stop: SIGTERM shuts down in order --------------------------------------------------------------------


def test_sigterm_tears_down_runtimes_and_exits_cleanly(home):
    process = subprocess.Popen(
        [sys.executable, "-m", "mme_helpers.local", "--home", str(home), "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=lifecycle.service_environment(),
    )
    try:
        info = wait_until(lambda: config.ServiceInfo.load(home), timeout=60)
        wait_until(lambda: lifecycle.health(info), timeout=60)
        bucket = config.default_bucket(info.region)
        make_endpoint(info, bucket, "torn")
        assert len(cache_folders(home)) == 1
        client(info, "s3").put_object(Bucket=bucket, Key="last.txt", Body=b"acknowledged just before stop")
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "tore down 1 endpoint runtime" in output and "local AWS service stopped" in output
    assert cache_folders(home) == []  # the runtime's disk cache went with it
    restarted, _ = lifecycle.start(home)
    s3 = client(restarted, "s3")
    assert s3.get_object(Bucket=bucket, Key="last.txt")["Body"].read() == b"acknowledged just before stop"


# every region ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("region", ["us-east-1", "us-west-2", "eu-west-1"])
def test_the_service_starts_and_serves_in_every_region(tmp_path, region):
    try:
        info, _ = lifecycle.start(tmp_path, region=region, timeout=30)
        assert info.region == region
        s3 = client(info, "s3")
        bucket = config.default_bucket(region)
        s3.put_object(Bucket=bucket, Key="hello.txt", Body=b"hello " + region.encode())
        assert s3.get_object(Bucket=bucket, Key="hello.txt")["Body"].read() == b"hello " + region.encode()
        _seed_flow(info, s3, bucket)
    finally:
        lifecycle.stop(tmp_path)


def _seed_flow(info, s3, bucket: str) -> None:
    """The seed's flow in ``info.region``: a training job on CSV, a multi-model endpoint, the artifact
    added under its prefix, a prediction with ``TargetModel``; every ARN names the region."""
    import json

    import numpy as np

    from mme_helpers.fleet import training_job_request

    sagemaker, runtime = client(info, "sagemaker"), client(info, "sagemaker-runtime")
    rng = np.random.default_rng(0)
    x = rng.random((200, 3))
    rows = np.column_stack([x @ [10.0, 20.0, 30.0], x])
    for folder in ("train", "val"):
        body = "\n".join(",".join(f"{v:.6f}" for v in row) for row in rows).encode()
        s3.put_object(Bucket=bucket, Key=f"flow/data/{folder}/data.csv", Body=body)
    image = f"246618743249.dkr.ecr.{info.region}.amazonaws.com/sagemaker-xgboost:3.0-5"
    request = training_job_request(
        "flow-job", f"s3://{bucket}/flow/data", f"s3://{bucket}/flow/output", image, config.ROLE_ARN,
        {"num_round": 20, "objective": "reg:squarederror", "max_depth": 3}, "ml.m5.xlarge",
    )
    arn = sagemaker.create_training_job(**request)["TrainingJobArn"]
    assert f":{info.region}:" in arn
    wait_until(lambda: sagemaker.describe_training_job(TrainingJobName="flow-job")["TrainingJobStatus"] != "InProgress")
    job = sagemaker.describe_training_job(TrainingJobName="flow-job")
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    source = job["ModelArtifacts"]["S3ModelArtifacts"].removeprefix(f"s3://{bucket}/")
    s3.copy_object(Bucket=bucket, Key="flow/models/one.tar.gz", CopySource={"Bucket": bucket, "Key": source})
    sagemaker.create_model(
        ModelName="flow-model", ExecutionRoleArn=config.ROLE_ARN,
        PrimaryContainer={"Image": image, "Mode": "MultiModel", "ModelDataUrl": f"s3://{bucket}/flow/models/"},
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName="flow-config",
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "flow-model", "InitialInstanceCount": 1,
                             "InstanceType": "ml.m5.large"}],
    )
    endpoint_arn = sagemaker.create_endpoint(EndpointName="flow", EndpointConfigName="flow-config")["EndpointArn"]
    assert f":{info.region}:" in endpoint_arn
    sagemaker.get_waiter("endpoint_in_service").wait(EndpointName="flow", WaiterConfig={"Delay": 0.2, "MaxAttempts": 150})
    answer = runtime.invoke_endpoint(
        EndpointName="flow", TargetModel="one.tar.gz", ContentType="text/csv", Body="0.5,0.5,0.5"
    )
    assert abs(json.loads(answer["Body"].read())[0] - 30.0) < 5.0  # 10*0.5 + 20*0.5 + 30*0.5


# the bar, short: kill -9 under a write load, every acknowledged write there, every delete gone -------


def test_acknowledged_writes_survive_kill_cycles_under_load(tmp_path):
    """The short version of benchmarks/bench_crash_cycles.py (10 cycles)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_crash_cycles import run

    figures = run(tmp_path, cycles=2, seconds=1.5, seed=13)
    assert figures["acknowledged_puts"] > 0 and figures["acknowledged_deletes"] > 0
    assert set(figures["by_writer"]) == {"signed", "presigned-v4", "presigned-v2", "presigned-v4-form"}
    assert figures["problems"] == []
