"""IAM for SageMaker roles in local mode: the service's execution role, IAM's policy simulator
(what SDK v3 asks before it trains), SageMaker refusing a role it cannot assume, and the role
that a script passing none gets from the SDK config."""

from __future__ import annotations

import json

import pytest
import yaml
from botocore.exceptions import ClientError
from conftest import unique

from mme_helpers.local import config
from mme_helpers.local.iam_simulation import Statement, evaluate

SAGEMAKER_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
# what SDK v3 (sagemaker-core 2.27) simulates for a training role: the actions its policy grants on "*"
V3_TRAINING_ACTIONS = [
    "ecr:GetAuthorizationToken",
    "cloudwatch:PutMetricData",
    "ec2:CreateNetworkInterface",
    "ec2:CreateNetworkInterfacePermission",
    "ec2:DeleteNetworkInterface",
    "ec2:DeleteNetworkInterfacePermission",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeVpcs",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
]


@pytest.fixture(scope="module")
def iam(ctx):
    return ctx.client("iam")


def decisions(answer) -> dict[tuple[str, str], str]:
    return {(r["EvalActionName"], r["EvalResourceName"]): r["EvalDecision"] for r in answer["EvaluationResults"]}


def make_role(iam, trust: dict | None = None, policy: dict | None = None) -> str:
    name = unique("role")
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust or SAGEMAKER_TRUST))["Role"]["Arn"]
    if policy is not None:
        iam.put_role_policy(RoleName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
    return arn


def test_the_service_role_is_allowed_what_sagemaker_needs(iam, ctx):
    answer = iam.simulate_principal_policy(PolicySourceArn=config.ROLE_ARN, ActionNames=V3_TRAINING_ACTIONS)
    assert set(decisions(answer).values()) == {"allowed"}
    assert answer["EvaluationResults"][0]["MatchedStatements"][0]["SourcePolicyId"] == "MmeLocalSageMakerExecution"
    s3 = iam.simulate_principal_policy(
        PolicySourceArn=config.ROLE_ARN,
        ActionNames=["s3:PutObject"],
        ResourceArns=[f"arn:aws:s3:::{ctx.bucket}/*", "arn:aws:s3:::someone-elses-bucket/*"],
    )
    assert decisions(s3) == {
        ("s3:PutObject", f"arn:aws:s3:::{ctx.bucket}/*"): "allowed",
        ("s3:PutObject", "arn:aws:s3:::someone-elses-bucket/*"): "implicitDeny",
    }
    role = iam.get_role(RoleName=config.ROLE_NAME)["Role"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "sagemaker.amazonaws.com"}


def test_a_deny_wins_and_what_no_policy_allows_is_denied(iam):
    allow_all = {"Effect": "Allow", "Action": "*", "Resource": "*"}
    deny_ec2 = {"Effect": "Deny", "Action": "ec2:*", "Resource": "*"}
    denying = make_role(iam, policy={"Version": "2012-10-17", "Statement": [allow_all, deny_ec2]})
    answer = decisions(
        iam.simulate_principal_policy(PolicySourceArn=denying, ActionNames=["ec2:DescribeVpcs", "ecr:BatchGetImage"])
    )
    assert answer == {("ec2:DescribeVpcs", "*"): "explicitDeny", ("ecr:BatchGetImage", "*"): "allowed"}
    bare = make_role(iam)
    answer = decisions(iam.simulate_principal_policy(PolicySourceArn=bare, ActionNames=["ecr:BatchGetImage"]))
    assert answer == {("ecr:BatchGetImage", "*"): "implicitDeny"}


def test_an_unknown_role_is_no_such_entity(iam):
    with pytest.raises(ClientError) as raised:
        iam.simulate_principal_policy(
            PolicySourceArn=f"arn:aws:iam::{config.ACCOUNT_ID}:role/Nobody", ActionNames=["s3:GetObject"]
        )
    assert raised.value.response["Error"]["Code"] == "NoSuchEntity"


def test_policy_evaluation_follows_iam():
    """Wildcards (actions case-insensitive, ``*`` across ``/``), NotAction, NotResource, and a
    statement with a condition left out (the simulator has no context for it)."""

    def statements(*bodies):
        return [Statement("p", "IAM Policy", body) for body in bodies]

    assert (
        evaluate(
            statements({"Effect": "Allow", "Action": "S3:Get*", "Resource": "arn:aws:s3:::b/*"}),
            "s3:GetObject",
            "arn:aws:s3:::b/x/y",
        ).decision
        == "allowed"
    )
    assert (
        evaluate(statements({"Effect": "Allow", "Action": "s3:Get?bject", "Resource": "*"}), "s3:GetObject").decision
        == "allowed"
    )
    assert (
        evaluate(statements({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}), "iam:PassRole").decision
        == "implicitDeny"
    )
    assert (
        evaluate(statements({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}), "s3:GetObject").decision
        == "allowed"
    )
    assert (
        evaluate(
            statements({"Effect": "Allow", "Action": "*", "NotResource": "arn:aws:s3:::b/*"}),
            "s3:GetObject",
            "arn:aws:s3:::b/k",
        ).decision
        == "implicitDeny"
    )
    conditional = evaluate(
        statements(
            {"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"StringEquals": {"aws:RequestedRegion": "x"}}}
        ),
        "s3:GetObject",
    )
    assert (conditional.decision, conditional.missing_context) == ("implicitDeny", ("aws:RequestedRegion",))


def test_sagemaker_refuses_a_role_it_cannot_assume(ctx, iam):
    """A role that does not exist, or does not trust sagemaker.amazonaws.com: CreateTrainingJob and
    CreateModel answer AWS's ValidationException before anything is made."""
    sm = ctx.client("sagemaker")
    missing = f"arn:aws:iam::{config.ACCOUNT_ID}:role/{unique('missing')}"
    untrusting = make_role(
        iam,
        trust={
            **SAGEMAKER_TRUST,
            "Statement": [{**SAGEMAKER_TRUST["Statement"][0], "Principal": {"Service": "ec2.amazonaws.com"}}],
        },
    )
    image = "246618743249.dkr.ecr.us-west-2.amazonaws.com/sagemaker-xgboost:1.7-1"
    for role in (missing, untrusting):
        expected = (
            f"Could not assume role {role}. Please ensure that the role exists and allows principal "
            "'sagemaker.amazonaws.com' to assume the role."
        )
        name = unique("job")
        with pytest.raises(ClientError) as raised:
            sm.create_training_job(
                TrainingJobName=name,
                AlgorithmSpecification={"TrainingImage": image, "TrainingInputMode": "File"},
                RoleArn=role,
                OutputDataConfig={"S3OutputPath": f"s3://{ctx.bucket}/out"},
                ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
                StoppingCondition={"MaxRuntimeInSeconds": 60},
                HyperParameters={"num_round": "2"},
            )
        assert raised.value.response["Error"] == {"Code": "ValidationException", "Message": expected}
        assert not sm.list_training_jobs(NameContains=name)["TrainingJobSummaries"]
        with pytest.raises(ClientError) as raised:
            sm.create_model(
                ModelName=name,
                ExecutionRoleArn=role,
                PrimaryContainer={"Image": image, "Mode": "MultiModel", "ModelDataUrl": f"s3://{ctx.bucket}/m/"},
            )
        assert raised.value.response["Error"] == {"Code": "ValidationException", "Message": expected}


def test_the_sdk_config_names_the_service_role_for_every_role_path(service, service_home):
    """A script that passes no role gets the service's, from the config file ``env`` points to; v2
    reads it for its TrainingJob and Model paths (v3's ModelTrainer: tests/test_sdk_v3.py)."""
    environment = config.client_environment(service, service_home)
    assert environment[config.ROLE_VARIABLE] == config.ROLE_ARN
    with open(environment["SAGEMAKER_USER_CONFIG_OVERRIDE"]) as file:
        document = yaml.safe_load(file)
    for path in config.ROLE_CONFIG_PATHS:
        node = document["SageMaker"]
        for key in path:
            node = node[key]
        assert node == config.ROLE_ARN, path
    from sagemaker.config.config_schema import MODEL_EXECUTION_ROLE_ARN_PATH, TRAINING_JOB_ROLE_ARN_PATH
    from sagemaker.utils import resolve_value_from_config

    for path in (TRAINING_JOB_ROLE_ARN_PATH, MODEL_EXECUTION_ROLE_ARN_PATH):
        assert resolve_value_from_config(config_path=path, sagemaker_config=document) == config.ROLE_ARN


def test_a_v2_estimator_without_a_role_takes_the_configured_one(ctx):
    from sagemaker.estimator import Estimator

    estimator = Estimator(
        image_uri="246618743249.dkr.ecr.us-west-2.amazonaws.com/sagemaker-xgboost:1.7-1",
        instance_count=1,
        instance_type="ml.m5.large",
        sagemaker_session=ctx.sagemaker_session,
    )
    assert estimator.role == config.ROLE_ARN
