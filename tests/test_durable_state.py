"""The local service's state survives stop/start and kill -9: buckets and objects, models,
endpoint configs, endpoints (back InService, caches cold), training jobs; a job running at the
kill ends Failed with the reason; ``reset`` forgets everything; a zombie service counts as dead."""

import json
import os
import signal
import subprocess
import sys
import time

import boto3
import pytest
from conftest import model_tar, train_booster, wait_until

from mme_helpers.local import config, lifecycle

IMAGE = "246618743249.dkr.ecr.us-west-2.amazonaws.com/sagemaker-xgboost:1.7-1"
ROW = "1,2,3,4,5,6"


@pytest.fixture
def home(tmp_path):
    yield tmp_path
    lifecycle.stop(tmp_path)


def clients(info):
    session = boto3.session.Session(info.access_key_id, info.secret_access_key, region_name=info.region)
    return {name: session.client(name, endpoint_url=info.url) for name in ("s3", "sagemaker", "sagemaker-runtime")}


def make_endpoint(c, bucket, name):
    c["s3"].put_object(Bucket=bucket, Key=f"{name}/m.tar.gz", Body=model_tar(train_booster()))
    c["sagemaker"].create_model(
        ModelName=name,
        ExecutionRoleArn=config.ROLE_ARN,
        PrimaryContainer={"Image": IMAGE, "Mode": "MultiModel", "ModelDataUrl": f"s3://{bucket}/{name}/"},
        Tags=[{"Key": "team", "Value": "pricing"}],
    )
    c["sagemaker"].create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
        ],
    )
    c["sagemaker"].create_endpoint(EndpointName=name, EndpointConfigName=name)
    c["sagemaker"].get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig={"Delay": 0.2})


def predict(c, name):
    body = (
        c["sagemaker-runtime"]
        .invoke_endpoint(EndpointName=name, TargetModel="m.tar.gz", ContentType="text/csv", Body=ROW)["Body"]
        .read()
    )
    return json.loads(body)


def start_training(c, bucket, name, rounds):
    c["s3"].put_object(Bucket=bucket, Key=f"{name}/train/t.csv", Body="\n".join(f"{i},{i},1,2,3,4,5" for i in range(300)))
    c["sagemaker"].create_training_job(
        TrainingJobName=name,
        RoleArn=config.ROLE_ARN,
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        InputDataConfig=[
            {
                "ChannelName": "train",
                "ContentType": "text/csv",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"s3://{bucket}/{name}/train",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
        ],
        OutputDataConfig={"S3OutputPath": f"s3://{bucket}/{name}/out"},
        ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
        HyperParameters={"num_round": str(rounds), "max_depth": "8", "eta": "0.01"},
    )


def status_of(c, job):
    return c["sagemaker"].describe_training_job(TrainingJobName=job)


def test_everything_survives_stop_and_start(home):
    info, _ = lifecycle.start(home)
    c = clients(info)
    bucket = config.default_bucket(info.region)
    c["s3"].put_object(
        Bucket=bucket, Key="odd key/ü +x.txt", Body=b"payload", ContentType="text/plain", Metadata={"owner": "me"}
    )
    c["s3"].put_object(Bucket=bucket, Key="gone.txt", Body=b"x")
    c["s3"].delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "gone.txt"}]})
    c["s3"].create_bucket(Bucket="second-bucket", CreateBucketConfiguration={"LocationConstraint": info.region})
    make_endpoint(c, bucket, "durable")
    before = predict(c, "durable")
    start_training(c, bucket, "done-job", rounds=5)
    wait_until(lambda: status_of(c, "done-job")["TrainingJobStatus"] == "Completed")

    lifecycle.stop(home)
    first_key = info.access_key_id
    info, started = lifecycle.start(home)
    assert started and info.access_key_id == first_key  # clients made before the restart keep working
    c = clients(info)
    head = c["s3"].head_object(Bucket=bucket, Key="odd key/ü +x.txt")
    assert head["ContentType"] == "text/plain" and head["Metadata"] == {"owner": "me"}
    assert c["s3"].get_object(Bucket=bucket, Key="odd key/ü +x.txt")["Body"].read() == b"payload"
    keys = {o["Key"] for o in c["s3"].list_objects_v2(Bucket=bucket)["Contents"]}
    assert "gone.txt" not in keys and "durable/m.tar.gz" in keys
    assert "second-bucket" in {b["Name"] for b in c["s3"].list_buckets()["Buckets"]}
    job = status_of(c, "done-job")
    assert job["TrainingJobStatus"] == "Completed" and job["FinalMetricDataList"]
    assert c["s3"].head_object(Bucket=bucket, Key="done-job/out/done-job/output/model.tar.gz")["ContentLength"] > 0
    model = c["sagemaker"].describe_model(ModelName="durable")
    assert c["sagemaker"].list_tags(ResourceArn=model["ModelArn"])["Tags"] == [{"Key": "team", "Value": "pricing"}]
    c["sagemaker"].get_waiter("endpoint_in_service").wait(EndpointName="durable", WaiterConfig={"Delay": 0.2})
    assert predict(c, "durable") == before


def test_a_kill_fails_the_running_job_with_a_reason_and_keeps_the_rest(home):
    info, _ = lifecycle.start(home)
    c = clients(info)
    bucket = config.default_bucket(info.region)
    c["s3"].put_object(Bucket=bucket, Key="kept.txt", Body=b"kept")
    start_training(c, bucket, "long-job", rounds=200000)
    wait_until(lambda: status_of(c, "long-job")["SecondaryStatus"] == "Training")
    os.kill(info.pid, signal.SIGKILL)
    wait_until(lambda: not lifecycle._pid_alive(info.pid), timeout=10)

    info, started = lifecycle.start(home)
    assert started
    c = clients(info)
    job = status_of(c, "long-job")
    assert job["TrainingJobStatus"] == "Failed"
    assert "stopped while this job was running" in job["FailureReason"]
    assert job["SecondaryStatusTransitions"][-1]["Status"] == "Failed"
    assert c["s3"].get_object(Bucket=bucket, Key="kept.txt")["Body"].read() == b"kept"


def test_reset_forgets_everything(home):
    info, _ = lifecycle.start(home)
    c = clients(info)
    bucket = config.default_bucket(info.region)
    c["s3"].put_object(Bucket=bucket, Key="a.txt", Body=b"a")
    result = subprocess.run(
        [sys.executable, "-m", "mme_helpers.local", "--home", str(home), "reset"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "forgot its state" in result.stdout
    old_key = info.access_key_id
    info, _ = lifecycle.start(home)
    assert info.access_key_id != old_key  # a reset issues new credentials
    c = clients(info)
    assert "Contents" not in c["s3"].list_objects_v2(Bucket=bucket)  # the default bucket is there again, empty
    assert c["sagemaker"].list_training_jobs()["TrainingJobSummaries"] == []


def test_a_zombie_service_counts_as_dead_and_is_replaced(home):
    """A PID 1 that does not reap leaves an exited service as a zombie, which still answers kill(0)."""
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time; p = subprocess.Popen(['true']); print(p.pid, flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        zombie = int(parent.stdout.readline())
        wait_until(lambda: lifecycle._zombie(zombie), timeout=10)
        config.ServiceInfo(
            pid=zombie,
            port=1,
            region="us-west-2",
            access_key_id="x",
            secret_access_key="y",
            started_at=time.time(),
            home=str(home),
        ).save(home)
        assert lifecycle.status(home)["state"] == "dead"
        info, started = lifecycle.start(home)
        assert started and info.pid != zombie
    finally:
        parent.kill()
        parent.wait()
