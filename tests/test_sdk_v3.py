"""SDK v3 as a client of the local service: the flow of tests/sdk_v3_flow.py run in .venv-v3 (made by
``make venv``), with no role given and with the service's role, and v3's own role validation, which
passes on the service's role and fails on a role SageMaker could not use."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb
from conftest import unique

from mme_helpers.local import config

ROOT = Path(__file__).resolve().parents[1]
V3_PYTHON = ROOT / ".venv-v3" / "bin" / "python"
FLOW = Path(__file__).with_name("sdk_v3_flow.py")
ROW = [0.2, 0.4, 0.6, 0.8, 0.1, 0.3]


def v3_environment() -> dict[str, str]:
    """The test service's client environment, role validation on (as a learner's shell has it)."""
    if not V3_PYTHON.exists():
        pytest.fail(f"{V3_PYTHON} is missing: run `make venv` (it makes the SDK v3 environment .venv-v3)")
    environment = {key: value for key, value in os.environ.items() if key != "SAGEMAKER_VALIDATE_ROLE"}
    environment.pop("PYTHONPATH", None)
    return environment


def run_v3(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(V3_PYTHON), *args], env=v3_environment(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def channels(ctx):
    """A small regression data set as the built-in XGBoost reads it: CSV, label first, no header."""
    s3 = ctx.client("s3")
    prefix = unique("v3-data")
    rng = np.random.default_rng(7)
    for channel, rows in (("train", 400), ("validation", 100)):
        x = rng.random((rows, len(ROW)))
        y = x @ np.arange(1, len(ROW) + 1) * 1000
        buffer = io.StringIO()
        np.savetxt(buffer, np.column_stack([y, x]), delimiter=",", fmt="%.6f")
        s3.put_object(Bucket=ctx.bucket, Key=f"{prefix}/{channel}/data.csv", Body=buffer.getvalue().encode())
    return f"s3://{ctx.bucket}/{prefix}"


def local_prediction(ctx, artifact: str) -> float:
    """What the trained artifact predicts for ROW, loaded here with XGBoost."""
    bucket, _, key = artifact.removeprefix("s3://").partition("/")
    data = ctx.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        model = archive.extractfile("xgboost-model").read()
    booster = xgb.Booster()
    booster.load_model(bytearray(model))
    return float(booster.predict(xgb.DMatrix(np.array([ROW])))[0])


@pytest.mark.parametrize("role", [None, config.ROLE_ARN], ids=["no-role", "service-role"])
def test_the_v3_flow_trains_deploys_invokes_and_deletes(ctx, channels, role):
    """ModelTrainer with v3's XGBoost image (CSV channels, hyperparameters, wait=True with logs), the
    sagemaker.core resources for a multi-model endpoint, invoke with target_model, delete."""
    name = unique("v3")
    args = [
        str(FLOW),
        "--name",
        name,
        "--train",
        f"{channels}/train/",
        "--validation",
        f"{channels}/validation/",
        "--output",
        f"{channels}/output",
        "--prefix",
        f"{channels}/{name}/mme/",
        "--row",
        ",".join(map(str, ROW)),
    ]
    done = run_v3(args + (["--role", role] if role else []))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[len("RESULT ") :])
    assert result["image"] == "246618743249.dkr.ecr.us-west-2.amazonaws.com/sagemaker-xgboost:1.7-1"
    assert result["job_status"] == "Completed" and result["endpoint_status"] == "InService"
    assert result["job_role"] == result["model_role"] == config.ROLE_ARN  # no role given: the config's
    assert "validation-rmse:" in done.stdout  # the job's log, printed by wait(logs=True)
    assert result["prediction"][0] == pytest.approx(local_prediction(ctx, result["artifact"]), rel=1e-5)
    sm = ctx.client("sagemaker")
    assert not sm.list_endpoints(NameContains=name)["Endpoints"]
    assert not sm.list_models(NameContains=name)["Models"]
    assert not sm.list_endpoint_configs(NameContains=name)["EndpointConfigs"]


VALIDATE = """
import sys
from sagemaker.core.helper.iam_role_resolver import RoleValidationError, resolve_and_validate_role
try:
    print(resolve_and_validate_role(provided_role=sys.argv[1], role_type="training"))
except RoleValidationError as error:
    print(error)
    sys.exit(3)
"""


def test_v3_role_validation_passes_on_the_service_role_and_fails_where_aws_would(ctx, service):
    iam = ctx.client("iam")
    passed = run_v3(["-c", VALIDATE, config.ROLE_ARN], timeout=120)
    assert (passed.returncode, passed.stdout.strip()) == (0, config.ROLE_ARN), passed.stderr[-2000:]

    untrusted = unique("untrusted")
    ec2_trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
    iam.create_role(RoleName=untrusted, AssumeRolePolicyDocument=json.dumps(ec2_trust))
    iam.put_role_policy(
        RoleName=untrusted,
        PolicyName="all",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        ),
    )
    refused = run_v3(["-c", VALIDATE, f"arn:aws:iam::{config.ACCOUNT_ID}:role/{untrusted}"], timeout=120)
    assert refused.returncode == 3, refused.stdout + refused.stderr[-2000:]
    assert "trust policy does not allow 'sagemaker.amazonaws.com'" in refused.stdout

    denied = unique("denied")
    sagemaker_trust = {
        **ec2_trust,
        "Statement": [{**ec2_trust["Statement"][0], "Principal": {"Service": "sagemaker.amazonaws.com"}}],
    }
    iam.create_role(RoleName=denied, AssumeRolePolicyDocument=json.dumps(sagemaker_trust))
    iam.put_role_policy(
        RoleName=denied,
        PolicyName="no-vpc",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "*", "Resource": "*"},
                    {"Effect": "Deny", "Action": "ec2:*", "Resource": "*"},
                ],
            }
        ),
    )
    refused = run_v3(["-c", VALIDATE, f"arn:aws:iam::{config.ACCOUNT_ID}:role/{denied}"], timeout=120)
    assert refused.returncode == 3, refused.stdout + refused.stderr[-2000:]
    assert "Missing permissions: ec2:CreateNetworkInterface" in refused.stdout
