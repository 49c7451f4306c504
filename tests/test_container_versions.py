"""Each XGBoost container offered for multi-model endpoints as local mode serves and trains for it,
checked against that container's own XGBoost: 1.7-1 runs XGBoost 1.7.4 (.venv-container), 3.0-5
runs XGBoost 3.0.5 (.venv-container-3.0); both made by `make venv`."""

from __future__ import annotations

import json
import subprocess
import textwrap

import numpy as np
import pytest
from conftest import train_booster, unique, wait_until

from mme_helpers import container_xgboost
from mme_helpers.endpoint import wait_for_endpoint
from mme_helpers.sagemaker_hosting import model_for_container, pack_model, portable_model

CONTAINERS = {"1.7-1": "1.7.4", "3.0-5": "3.0.5"}  # image version -> its Dockerfile's XGBOOST_VERSION
ROWS = np.random.default_rng(1).random((20, 6)).astype(np.float32)
SCALE = 100_000.0  # prices: a base score far from the default of 0.5


def image(version: str) -> str:
    return f"246618743249.dkr.ecr.us-west-2.amazonaws.com/sagemaker-xgboost:{version}"


def in_container_python(version: str, script: str) -> dict:
    """Run ``script`` (which prints JSON) with the XGBoost of ``version``'s container."""
    python = container_xgboost.container_python(image_version=version)
    done = subprocess.run([str(python), "-c", textwrap.dedent(script)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


WHAT_THE_CONTAINER_SAVES = """
    import json, os, tempfile
    import numpy as np, xgboost as xgb
    rng = np.random.default_rng(0)
    x = rng.random((100, 3))
    bst = xgb.train({"max_depth": 2}, xgb.DMatrix(x, label=100000 * x[:, 0]), 3)
    folder = tempfile.mkdtemp()
    # what algorithm_mode/train.py does: bst.save_model(os.path.join(model_dir, MODEL_NAME))
    bst.save_model(os.path.join(folder, "xgboost-model"))
    data = open(os.path.join(folder, "xgboost-model"), "rb").read()
    base_score = json.loads(bst.save_config())["learner"]["learner_model_param"]["base_score"]
    print(json.dumps({"head": data[:4].hex(), "data": data.hex(), "base_score": base_score}))
"""


def make_endpoint(ctx, clients, version: str) -> tuple[str, str]:
    name = unique(f"ep-{version.replace('.', '-')}")
    prefix = f"tests/{name}/models/"
    container = {"Image": image(version), "Mode": "MultiModel", "ModelDataUrl": f"s3://{ctx.bucket}/{prefix}"}
    sm = clients.sagemaker
    sm.create_model(ModelName=name, ExecutionRoleArn=ctx.role, PrimaryContainer=container)
    variant = {"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    wait_for_endpoint(sm, name, poll_seconds=0.2)
    return name, prefix


def served(clients, endpoint: str, target: str) -> np.ndarray:
    body = "\n".join(",".join(repr(float(v)) for v in row) for row in ROWS)
    response = clients.runtime.invoke_endpoint(EndpointName=endpoint, TargetModel=target, ContentType="text/csv", Body=body)
    return np.array(json.loads(response["Body"].read()))


def training_job(ctx, clients, version: str) -> tuple[bytes, np.ndarray]:
    """A training job of ``version`` through the local service; its model.tar.gz and features."""
    rng = np.random.default_rng(3)
    x = rng.random((200, 4))
    y = 500_000 + 100_000 * x[:, 0]
    csv = "\n".join(",".join(f"{v:.6f}" for v in (label, *row)) for label, row in zip(y, x, strict=True))
    name = unique(f"job-{version.replace('.', '-')}")
    clients.s3.put_object(Bucket=ctx.bucket, Key=f"tests/{name}/train/train.csv", Body=csv.encode())
    clients.sagemaker.create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": image(version), "TrainingInputMode": "File"},
        RoleArn=ctx.role,
        HyperParameters={"num_round": "20", "objective": "reg:squarederror"},
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
    job = wait_until(
        lambda: (d := clients.sagemaker.describe_training_job(TrainingJobName=name))["TrainingJobStatus"] != "InProgress"
        and d
    )
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    key = job["ModelArtifacts"]["S3ModelArtifacts"].split(ctx.bucket + "/", 1)[1]
    return clients.s3.get_object(Bucket=ctx.bucket, Key=key)["Body"].read(), x


# the artifact check runs in the version's XGBoost ------------------------------------------------------


@pytest.mark.parametrize("version, xgboost", CONTAINERS.items())
def test_check_artifacts_runs_in_the_xgboost_of_the_endpoints_container(version, xgboost):
    artifact = pack_model(portable_model(train_booster()))
    table = container_xgboost.check_artifacts({"m": artifact}, ROWS, image_version=version)
    assert table.attrs["container_xgboost"] == xgboost
    assert table.attrs["image_version"] == version
    assert table.loc["m", "loads"]


def test_a_version_without_a_container_environment_is_refused_by_name():
    with pytest.raises(ValueError, match="3.2-0"):
        container_xgboost.check_artifacts({}, ROWS, image_version="3.2-0")


# training jobs write what their container writes ---------------------------------------------------------


def test_a_3_0_5_training_job_writes_ubjson_with_a_plain_base_score_as_xgboost_3_0_5_does(ctx, clients):
    theirs = in_container_python("3.0-5", WHAT_THE_CONTAINER_SAVES)
    assert bytes.fromhex(theirs["head"])[:2] == b"{L" and not theirs["base_score"].startswith("[")  # UBJSON, a number
    artifact, x = training_job(ctx, clients, "3.0-5")
    ours = container_xgboost.model_file(artifact)
    assert ours[:2] == b"{L"  # UBJSON, as 3.0.5 writes it
    value = ours.index(b"base_scoreSL") + len(b"base_scoreSL") + 8  # the key, a string of int64 length
    assert ours[value : value + 1] != b"["  # the base score a number, not a list
    table = container_xgboost.check_artifacts({"job": artifact}, x, image_version="3.0-5")
    assert table.loc["job", "largest difference"] < 1.0  # dollars, on prices of 500,000


def test_a_1_7_1_training_job_writes_json_that_1_7_4_reads_as_xgboost_3_cannot_write_its_binary_format(ctx, clients):
    theirs = in_container_python("1.7-1", WHAT_THE_CONTAINER_SAVES)
    assert bytes.fromhex(theirs["head"]) == b"binf"  # the deprecated binary format: XGBoost 3 cannot write it
    artifact, x = training_job(ctx, clients, "1.7-1")
    ours = container_xgboost.model_file(artifact)
    assert ours[:2] == b'{"' and not json.loads(ours)["learner"]["learner_model_param"]["base_score"].startswith("[")
    table = container_xgboost.check_artifacts({"job": artifact}, x, image_version="1.7-1")
    assert table.loc["job", "largest difference"] < 1.0


# endpoints price as their container's XGBoost does ---------------------------------------------------------


@pytest.mark.parametrize("version", CONTAINERS)
def test_an_endpoint_prices_each_format_as_its_containers_xgboost_does(ctx, clients, version):
    """An XGBoost 3.2 model as saved (base score "[3.66E5]") is read by 1.7.4 and 3.0.5 with the
    default base score 0.5: mispriced by the mean price, on AWS and locally alike; the portable JSON and
    what the version's training job writes are priced right."""
    booster = train_booster(scale=SCALE)
    models = {
        "as-saved-ubj": bytes(booster.save_raw("ubj")),
        "as-saved-json": bytes(booster.save_raw("json")),
        "portable": portable_model(booster),
        "training-job": model_for_container(booster, version)[0],
    }
    endpoint, prefix = make_endpoint(ctx, clients, version)
    for name, model in models.items():
        clients.s3.put_object(Bucket=ctx.bucket, Key=prefix + name, Body=pack_model(model))
    real = container_xgboost.predict_in_container(models, ROWS, image_version=version)
    assert real["xgboost"] == CONTAINERS[version]
    truth = booster.inplace_predict(ROWS)
    base_score = float(json.loads(booster.save_config())["learner"]["learner_model_param"]["base_score"].strip("[]"))
    for name in models:
        local = served(clients, endpoint, name)
        assert local == pytest.approx(np.array(real["predictions"][name]), rel=1e-6, abs=1e-3), name
    for name in ("as-saved-ubj", "as-saved-json"):
        assert served(clients, endpoint, name) == pytest.approx(truth - base_score + 0.5, rel=1e-5, abs=0.5)
    for name in ("portable", "training-job"):
        assert served(clients, endpoint, name) == pytest.approx(truth, rel=1e-6)


def test_a_newer_image_version_reads_the_listed_base_score(ctx, clients):
    """3.2-0 (SDK v3 only): no published Dockerfile, so local mode serves it with its own XGBoost as it is."""
    booster = train_booster(scale=SCALE)
    endpoint, prefix = make_endpoint(ctx, clients, "3.2-0")
    clients.s3.put_object(Bucket=ctx.bucket, Key=prefix + "m", Body=pack_model(bytes(booster.save_raw("ubj"))))
    assert served(clients, endpoint, "m") == pytest.approx(booster.inplace_predict(ROWS), rel=1e-6)


def test_a_model_in_xgboost_1_binary_format_is_a_model_error_that_says_so(ctx, clients):
    """What a 1.7-1 training job writes on AWS: local mode's XGBoost 3 cannot read it, and says why."""
    binary = bytes.fromhex(in_container_python("1.7-1", WHAT_THE_CONTAINER_SAVES)["data"])
    endpoint, prefix = make_endpoint(ctx, clients, "1.7-1")
    clients.s3.put_object(Bucket=ctx.bucket, Key=prefix + "old", Body=pack_model(binary))
    with pytest.raises(clients.runtime.exceptions.ModelError, match="deprecated binary format"):
        served(clients, endpoint, "old")
