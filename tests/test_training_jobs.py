"""Training jobs through the genuine SageMaker SDK 2.x against the local service."""

import io
import tarfile
import time
import types

import numpy as np
import pytest
import sagemaker
import xgboost as xgb
from botocore.exceptions import ClientError
from conftest import unique, wait_until
from sagemaker import image_uris

from mme_helpers import data
from mme_helpers.training import excerpt, training_log

HYPERPARAMETERS = {"max_depth": 3, "eta": 0.3, "objective": "reg:squarederror", "num_round": 10}


@pytest.fixture(scope="module")
def image(ctx):
    return image_uris.retrieve(framework="xgboost", region=ctx.region, version="1.7-1")


@pytest.fixture(scope="module")
def channels(ctx, tmp_path_factory):
    """A city's data uploaded as the notebook uploads it."""
    folder = tmp_path_factory.mktemp("data")
    data.generate_dataset(["Test_City"], 300, 7, folder)
    prefix = unique("tests/train-data")
    inputs = ctx.sagemaker_session.upload_data(path=str(folder / "Test_City"), key_prefix=prefix)
    return inputs


def estimator(ctx, image, base="t", **hyperparameters):
    est = sagemaker.estimator.Estimator(
        image_uri=image,
        role=ctx.role,
        instance_count=1,
        instance_type="ml.m5.xlarge",
        output_path=f"s3://{ctx.bucket}/tests/artifacts",
        base_job_name=unique(base),
        sagemaker_session=ctx.sagemaker_session,
    )
    est.set_hyperparameters(**(hyperparameters or HYPERPARAMETERS))
    return est


def inputs_for(channels, **overrides):
    result = {
        "train": sagemaker.inputs.TrainingInput(channels + "/train", content_type="text/csv"),
        "validation": sagemaker.inputs.TrainingInput(channels + "/val", content_type="text/csv"),
    }
    result.update(overrides)
    return {k: v for k, v in result.items() if v is not None}


def finished(est):
    return wait_until(lambda: (d := est.latest_training_job.describe())["TrainingJobStatus"] != "InProgress" and d)


def test_fit_without_waiting_trains_a_real_model(ctx, clients, image, channels):
    est = estimator(ctx, image)
    est.fit(inputs_for(channels), wait=False)
    job = finished(est)
    assert job["TrainingJobStatus"] == "Completed" and job["SecondaryStatus"] == "Completed"
    name = job["TrainingJobName"]
    assert job["ModelArtifacts"]["S3ModelArtifacts"] == f"s3://{ctx.bucket}/tests/artifacts/{name}/output/model.tar.gz"
    assert [t["Status"] for t in job["SecondaryStatusTransitions"]] == [
        "Starting",
        "Downloading",
        "Training",
        "Uploading",
        "Completed",
    ]
    metrics = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
    assert set(metrics) == {"train:rmse", "validation:rmse"} and 0 < metrics["train:rmse"] < 100000
    assert job["HyperParameters"]["num_round"] == "10"
    # the artifact: one top-level xgboost-model that XGBoost loads, with 10 trees and 6 features
    body = clients.s3.get_object(Bucket=ctx.bucket, Key=f"tests/artifacts/{name}/output/model.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        assert archive.getnames() == ["xgboost-model"]
        booster = xgb.Booster(model_file=bytearray(archive.extractfile("xgboost-model").read()))
    assert booster.num_features() == 6 and booster.num_boosted_rounds() == 10
    # the SDK's model from the job points at the artifact
    model = est.create_model(role=ctx.role, image_uri=image)
    assert model.model_data == job["ModelArtifacts"]["S3ModelArtifacts"]


def test_training_is_deterministic(ctx, clients, image, channels):
    artifacts = []
    for _ in range(2):
        est = estimator(ctx, image, subsample=0.7, num_round=5, objective="reg:squarederror")
        est.fit(inputs_for(channels), wait=False)
        job = finished(est)
        artifacts.append({m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]})
    assert artifacts[0] == artifacts[1]


def test_fit_wait_streams_the_log(ctx, image, channels, capsys, monkeypatch):
    """fit(wait=True) polls CloudWatch Logs as on AWS; its 10 s / 30 s pauses are compressed here."""
    clock = {"offset": 0.0}
    fake_time = types.SimpleNamespace(
        time=lambda: time.time() + clock["offset"],
        sleep=lambda seconds: clock.__setitem__("offset", clock["offset"] + seconds) or time.sleep(0.05),
    )
    monkeypatch.setattr(sagemaker.session, "time", fake_time)
    est = estimator(ctx, image, base="wait")
    est.fit(inputs_for(channels), wait=True)
    out = capsys.readouterr().out
    assert "Completed - Training job completed" in out
    assert "[9]\ttrain-rmse:" in out and "validation-rmse:" in out
    assert "Model written to s3://" in out
    # the job's log says how xgboost-model is saved for its container version (1.7-1 here)
    assert "xgboost-model written as JSON with the base score a number, which XGBoost 1.7.4 reads" in out
    est.logs()  # after the fact
    assert "train matrix has 180 rows, 6 features" in capsys.readouterr().out
    lines = training_log(ctx.client("logs"), est.latest_training_job.name)  # as notebook 02 reads it
    assert lines[0].startswith("Starting the built-in XGBoost algorithm") and lines[-1].startswith("Model written to")
    shown = excerpt(lines, head=3, tail=2).splitlines()
    assert shown[:3] == lines[:3] and shown[-2:] == lines[-2:]
    assert shown[3] == f"   ... {len(lines) - 5} more lines ..."


def test_a_short_log_is_shown_whole():
    assert excerpt(["a", "b", "c"], head=1, tail=1) == "a\nb\nc"


@pytest.mark.parametrize(
    "hyperparameters, channel_overrides, reason",
    [
        ({"max_depth": 3}, {}, "Missing required hyperparameter: num_round"),
        ({"num_round": 5, "objective": "reg:nonsense"}, {}, "objective: value 'reg:nonsense' is not one of"),
        ({"num_round": 5, "max_depth": "deep"}, {}, "max_depth: value 'deep' is not a whole number"),
        ({"num_round": 5, "learning_speed": 3}, {}, "learning_speed is not a hyperparameter"),
        (HYPERPARAMETERS, {"train": None}, "channel 'train' is required"),
    ],
)
def test_failing_jobs_say_why(ctx, image, channels, hyperparameters, channel_overrides, reason):
    est = estimator(ctx, image, **hyperparameters)
    est.fit(inputs_for(channels, **channel_overrides), wait=False)
    job = finished(est)
    assert job["TrainingJobStatus"] == "Failed"
    assert reason in job["FailureReason"] and job["FailureReason"].startswith("ClientError: ")
    assert "ModelArtifacts" not in job  # no artifact: no S3ModelArtifacts (its pattern forbids "")


def test_bad_csv_fails_with_the_file_named(ctx, clients, image):
    prefix = unique("tests/bad-csv")
    clients.s3.put_object(Bucket=ctx.bucket, Key=f"{prefix}/train/part.csv", Body=b"1,2,3\n4,five,6\n")
    est = estimator(ctx, image)
    est.fit(
        {"train": sagemaker.inputs.TrainingInput(f"s3://{ctx.bucket}/{prefix}/train", content_type="text/csv")}, wait=False
    )
    job = finished(est)
    assert job["TrainingJobStatus"] == "Failed"
    assert f"{prefix}/train/part.csv" in job["FailureReason"] and "not numeric CSV" in job["FailureReason"]
    assert "'five'" in job["FailureReason"]  # the value it could not read


def test_empty_channel_fails(ctx, image):
    est = estimator(ctx, image)
    est.fit(
        {"train": sagemaker.inputs.TrainingInput(f"s3://{ctx.bucket}/nothing/here", content_type="text/csv")}, wait=False
    )
    assert "has no data" in finished(est)["FailureReason"]


def test_an_image_that_is_not_xgboost_fails(ctx, channels):
    image = image_uris.retrieve(framework="linear-learner", region=ctx.region)
    est = estimator(ctx, image)
    est.fit(inputs_for(channels), wait=False)
    job = finished(est)
    assert job["TrainingJobStatus"] == "Failed"
    assert "only the built-in XGBoost" in job["FailureReason"] and "linear-learner" in job["FailureReason"]


def test_libsvm_channels_and_early_stopping(ctx, clients, image):
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(200):
        x = rng.random(3)
        rows.append(f"{x.sum():.4f} " + " ".join(f"{i}:{v:.4f}" for i, v in enumerate(x)))
    prefix = unique("tests/libsvm")
    body = "\n".join(rows).encode()
    clients.s3.put_object(Bucket=ctx.bucket, Key=f"{prefix}/train/a.libsvm", Body=body)
    clients.s3.put_object(Bucket=ctx.bucket, Key=f"{prefix}/validation/a.libsvm", Body=body)
    est = estimator(ctx, image, num_round=500, early_stopping_rounds=3, eta=0.9, objective="reg:squarederror")
    est.fit(
        {
            c: sagemaker.inputs.TrainingInput(f"s3://{ctx.bucket}/{prefix}/{c}", content_type="text/libsvm")
            for c in ("train", "validation")
        },
        wait=False,
    )
    job = finished(est)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    body = clients.s3.get_object(Bucket=ctx.bucket, Key=job["ModelArtifacts"]["S3ModelArtifacts"].split("/", 3)[3])
    with tarfile.open(fileobj=io.BytesIO(body["Body"].read())) as archive:
        booster = xgb.Booster(model_file=bytearray(archive.extractfile("xgboost-model").read()))
    assert booster.num_boosted_rounds() < 500  # kept only up to the best iteration


def test_stop_training_job(ctx, clients, image, channels):
    est = estimator(ctx, image, num_round=100000, max_depth=10, objective="reg:squarederror")
    est.fit(inputs_for(channels), wait=False)
    name = est.latest_training_job.job_name
    wait_until(lambda: clients.sagemaker.describe_training_job(TrainingJobName=name)["SecondaryStatus"] == "Training")
    clients.sagemaker.stop_training_job(TrainingJobName=name)
    job = wait_until(
        lambda: (
            (d := clients.sagemaker.describe_training_job(TrainingJobName=name))["TrainingJobStatus"] in ("Stopped",) and d
        )
    )
    assert job["TrainingJobStatus"] == "Stopped"

    # the stopped job's worker process was ended; every worker slot still trains the next jobs
    following = [estimator(ctx, image) for _ in range(3)]
    for est in following:
        est.fit(inputs_for(channels), wait=False)
    assert [finished(est)["TrainingJobStatus"] for est in following] == ["Completed"] * 3


def test_a_job_out_of_time_is_stored_as_max_runtime_exceeded(ctx, clients, image, channels, service_home):
    """The job's end is saved whole: a restart finds MaxRuntimeExceeded, not the Stopped it was saved as before."""
    from mme_helpers.local.state import StateStore

    est = estimator(ctx, image, num_round=100000, max_depth=10, objective="reg:squarederror")
    est.max_run = 1  # MaxRuntimeInSeconds
    est.fit(inputs_for(channels), wait=False)
    name = est.latest_training_job.job_name
    job = wait_until(
        lambda: (d := clients.sagemaker.describe_training_job(TrainingJobName=name))["TrainingJobStatus"] == "Stopped" and d
    )
    assert job["SecondaryStatus"] == "MaxRuntimeExceeded"
    assert job["SecondaryStatusTransitions"][-1]["Status"] == "MaxRuntimeExceeded" and "ModelArtifacts" not in job

    def stored():
        return next(r for r in StateStore(service_home).resources("training-jobs") if r["name"] == name)

    assert wait_until(lambda: stored()["secondary_status"] == "MaxRuntimeExceeded", timeout=10)


def test_control_plane_errors_are_aws_shaped(ctx, clients, image, channels):
    sm = clients.sagemaker
    with pytest.raises(ClientError) as raised:  # AWS's answer, not the documented ResourceNotFound (aws/aws-sdk#165)
        sm.describe_training_job(TrainingJobName="no-such-job")
    assert raised.value.response["Error"] == {"Code": "ValidationException", "Message": "Requested resource not found."}
    est = estimator(ctx, image)
    est.fit(inputs_for(channels), wait=False)
    job = finished(est)
    request = {
        k: job[k] for k in ("AlgorithmSpecification", "RoleArn", "OutputDataConfig", "ResourceConfig", "StoppingCondition")
    }
    with pytest.raises(sm.exceptions.ResourceInUse, match="must be unique"):
        sm.create_training_job(TrainingJobName=job["TrainingJobName"], **request)
    # every not-found of a model, configuration or endpoint names its ARN, as AWS does
    arn_of = f"arn:aws:sagemaker:{ctx.region}:{job['TrainingJobArn'].split(':')[4]}:{{}}/nope".format
    model, config, endpoint = arn_of("model"), arn_of("endpoint-config"), arn_of("endpoint")
    for call, kwargs, message in (
        (sm.describe_model, {"ModelName": "nope"}, f'Could not find model "{model}".'),
        (sm.delete_model, {"ModelName": "nope"}, f'Could not find model "{model}".'),
        (sm.describe_endpoint_config, {"EndpointConfigName": "nope"}, f'Could not find endpoint configuration "{config}".'),
        (sm.delete_endpoint_config, {"EndpointConfigName": "nope"}, f'Could not find endpoint configuration "{config}".'),
        (sm.describe_endpoint, {"EndpointName": "nope"}, f'Could not find endpoint "{endpoint}".'),
        (sm.delete_endpoint, {"EndpointName": "nope"}, f'Could not find endpoint "{endpoint}".'),
    ):
        with pytest.raises(ClientError) as raised:
            call(**kwargs)
        assert raised.value.response["Error"] == {"Code": "ValidationException", "Message": message}, call
    assert sm.describe_training_job(TrainingJobName=job["TrainingJobName"])["TrainingJobStatus"] == "Completed"


def test_malformed_requests_get_errors_and_the_service_keeps_serving(service, clients):
    import requests
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    def send(target, body):
        request = AWSRequest(
            "POST",
            service.url + "/",
            data=body,
            headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"},
        )
        SigV4Auth(Credentials(service.access_key_id, service.secret_access_key), "sagemaker", service.region).add_auth(
            request
        )
        return requests.post(service.url + "/", data=body, headers=dict(request.headers), timeout=10)

    cases = [
        ("SageMaker.CreateTrainingJob", b"{not json", "SerializationException"),
        ("SageMaker.CreateTrainingJob", b"[1, 2]", "SerializationException"),
        ("SageMaker.CreateTrainingJob", b'{"TrainingJobName": "x"}', "ValidationException"),
        ("SageMaker.CreateModel", b'{"ModelName": 5, "ExecutionRoleArn": "r"}', "ValidationException"),
        ("SageMaker.DoMagic", b"{}", "UnknownOperationException"),
    ]
    for target, body, error_type in cases:
        response = send(target, body)
        assert response.status_code == 400, (target, body)
        assert response.headers["x-amzn-ErrorType"] == error_type
        assert response.json()["__type"] == error_type and response.json()["message"]
    assert "at 'roleArn' failed to satisfy constraint: Member must not be null" in send(*cases[2][:2]).json()["message"]
    assert isinstance(clients.sagemaker.list_training_jobs()["TrainingJobSummaries"], list)


def test_list_training_jobs_filters_and_pages(ctx, clients, image, channels):
    base = unique("page")
    for _ in range(3):
        est = estimator(ctx, image)
        est.base_job_name = base
        est.fit(inputs_for(channels), wait=False)
        finished(est)
    sm = clients.sagemaker
    first = sm.list_training_jobs(NameContains=base, MaxResults=2)
    assert len(first["TrainingJobSummaries"]) == 2 and "NextToken" in first
    rest = sm.list_training_jobs(NameContains=base, MaxResults=2, NextToken=first["NextToken"])
    assert len(rest["TrainingJobSummaries"]) == 1 and "NextToken" not in rest
    names = [j["TrainingJobName"] for j in first["TrainingJobSummaries"] + rest["TrainingJobSummaries"]]
    assert len(set(names)) == 3 and all(base in n for n in names)
