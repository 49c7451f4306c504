"""The SageMaker control plane against botocore's service model, operation by operation.

Every operation the control plane implements (its dispatch table) is called with a valid request and
its response checked against the model's output shape, with AWS's ``x-amzn-RequestId``; then every
request member with an enum, pattern, length or range constraint is sent one value that breaks it
(made from the constraint itself), through a client that does not validate, and must come back as
AWS's ``ValidationException`` naming that member and constraint.
"""

from __future__ import annotations

import concurrent.futures
import copy
import json
import re
import uuid
from typing import Any

import botocore.session
import numpy as np
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.model import Shape
from conftest import model_tar, unique, wait_until

from mme_helpers.endpoint import wait_for_endpoint
from mme_helpers.local.sagemaker import validation
from mme_helpers.local.sagemaker.responses import SageMakerResponses

MODEL = botocore.session.get_session().get_service_model("sagemaker")
OPERATIONS = SageMakerResponses.implemented()
AWS_MESSAGE = re.compile(
    r"^(1 validation error|([2-9]|[1-9]\d+) validation errors) detected: Value .+ at '.+' failed to satisfy constraint: ",
    re.DOTALL,
)


class Recorder:
    """The raw HTTP answers a client got, from botocore's ``after-call`` event."""

    def __init__(self, client):
        self.calls: list[tuple[str, dict[str, str], bytes]] = []
        client.meta.events.register("after-call.sagemaker", self._record)

    def _record(self, http_response, model, **_):
        self.calls.append((model.name, dict(http_response.headers), http_response.content))

    def last(self, operation: str) -> tuple[dict[str, str], bytes]:
        for name, headers, content in reversed(self.calls):
            if name == operation:
                return headers, content
        raise AssertionError(f"no {operation} call recorded")


@pytest.fixture(scope="module")
def unchecked(ctx):
    """A SageMaker client that sends what it is given: the service alone has to refuse it."""
    client = ctx.boto_session.client("sagemaker", config=Config(parameter_validation=False, retries={"max_attempts": 1}))
    return client, Recorder(client)


def request_id_of(headers: dict[str, str]) -> uuid.UUID:
    value = {k.lower(): v for k, v in headers.items()}.get("x-amzn-requestid")
    assert value, f"no x-amzn-RequestId in {sorted(headers)}"
    parsed = uuid.UUID(value)
    assert parsed.version == 4
    return parsed


# (a) every operation, a valid request, the answer against the output shape --------------------------


def _training_data(ctx, clients) -> str:
    rng = np.random.default_rng(0)
    x = rng.random((200, 4))
    rows = np.column_stack([x @ np.arange(1, 5), x])
    prefix = unique("tests/conformance-data")
    body = "\n".join(",".join(f"{v:.5f}" for v in row) for row in rows).encode()
    clients.s3.put_object(Bucket=ctx.bucket, Key=f"{prefix}/train/data.csv", Body=body)
    return f"s3://{ctx.bucket}/{prefix}"


def _training_job(ctx, data: str, image: str, num_round: int, max_depth: int = 3) -> dict[str, Any]:
    return {
        "TrainingJobName": unique("conf"),
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "RoleArn": ctx.role,
        "HyperParameters": {"num_round": str(num_round), "max_depth": str(max_depth), "objective": "reg:squarederror"},
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "ContentType": "text/csv",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"{data}/train",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": f"{data}/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }


@pytest.fixture(scope="module")
def walked(ctx, clients, unchecked):
    """Every implemented operation called once with a valid request; returns the requests made."""
    from sagemaker import image_uris

    client, recorder = unchecked
    image = image_uris.retrieve(framework="xgboost", region=ctx.region, version="1.7-1")
    data = _training_data(ctx, clients)
    name = unique("conf")
    prefix = f"tests/{name}/models/"
    clients.s3.put_object(Bucket=ctx.bucket, Key=prefix + "m.tar.gz", Body=model_tar())
    requests: dict[str, dict[str, Any]] = {}

    def call(operation: str, **params):
        requests.setdefault(operation, params)
        method = getattr(client, re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower())
        return method(**params)

    quick = _training_job(ctx, data, image, num_round=5)
    slow = _training_job(ctx, data, image, num_round=100000, max_depth=10)
    call("CreateTrainingJob", **quick)
    call("CreateTrainingJob", **slow)
    container = {
        "Image": image,
        "Mode": "MultiModel",
        "ModelDataUrl": f"s3://{ctx.bucket}/{prefix}",
        "MultiModelConfig": {"ModelCacheSetting": "Enabled"},
    }
    model_arn = call("CreateModel", ModelName=name, ExecutionRoleArn=ctx.role, PrimaryContainer=container)["ModelArn"]
    call("DescribeModel", ModelName=name)
    call("ListModels", NameContains=name, SortBy="Name", SortOrder="Ascending", MaxResults=5)
    variant = {"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
    call("CreateEndpointConfig", EndpointConfigName=name, ProductionVariants=[variant])
    call("CreateEndpointConfig", EndpointConfigName=name + "-b", ProductionVariants=[variant])
    call("DescribeEndpointConfig", EndpointConfigName=name)
    call("ListEndpointConfigs", NameContains=name, MaxResults=5)
    call("CreateEndpoint", EndpointName=name, EndpointConfigName=name, Tags=[{"Key": "team", "Value": "ml"}])
    wait_for_endpoint(client, name, poll_seconds=0.1)
    call("DescribeEndpoint", EndpointName=name)
    call("ListEndpoints", NameContains=name, StatusEquals="InService", SortBy="CreationTime")
    call("UpdateEndpoint", EndpointName=name, EndpointConfigName=name + "-b")
    wait_for_endpoint(client, name, poll_seconds=0.1)
    call("AddTags", ResourceArn=model_arn, Tags=[{"Key": "stage", "Value": "test"}, {"Key": "owner", "Value": "me"}])
    call("ListTags", ResourceArn=model_arn, MaxResults=50)
    call("DeleteTags", ResourceArn=model_arn, TagKeys=["owner"])
    call("DescribeTrainingJob", TrainingJobName=slow["TrainingJobName"])  # in progress
    job = slow["TrainingJobName"]
    wait_until(lambda: client.describe_training_job(TrainingJobName=job)["SecondaryStatus"] == "Training")
    call("StopTrainingJob", TrainingJobName=slow["TrainingJobName"])
    wait_until(
        lambda: client.describe_training_job(TrainingJobName=quick["TrainingJobName"])["TrainingJobStatus"] == "Completed"
    )
    call("DescribeTrainingJob", TrainingJobName=quick["TrainingJobName"])  # completed
    call("ListTrainingJobs", NameContains="conf", StatusEquals="Completed", MaxResults=100)
    call("DeleteEndpoint", EndpointName=name)
    call("DeleteEndpointConfig", EndpointConfigName=name)
    call("DeleteEndpointConfig", EndpointConfigName=name + "-b")
    call("DeleteModel", ModelName=name)
    return requests, recorder


def test_every_operation_answers_in_its_output_shape_with_a_request_id(walked):
    requests, recorder = walked
    assert sorted(requests) == OPERATIONS, "an implemented operation is not walked"
    problems = {}
    ids = set()
    for operation, headers, content in recorder.calls:
        if operation not in OPERATIONS:
            continue
        ids.add(request_id_of(headers))
        body = json.loads(content or b"{}")
        found = validation.output_problems(MODEL.operation_model(operation).output_shape, body)
        if operation == "DescribeTrainingJob" and body["TrainingJobStatus"] != "Completed":
            # The model marks ModelArtifacts required, yet AWS leaves it out while a job has no
            # artifact (aws/sagemaker-python-sdk#6091: "DescribeTrainingJob returns ModelArtifacts: null").
            found = [p for p in found if p.path != "modelArtifacts"]
        if found:
            problems.setdefault(operation, []).extend(str(p) for p in found)
    assert problems == {}
    assert len(ids) == len([c for c in recorder.calls if c[0] in OPERATIONS]), "request ids are not unique"


def test_the_output_check_finds_what_is_wrong():
    """The checker the walk relies on: a describe with a member missing, one of a wrong type, one
    outside its enum and an empty S3 URI is reported member by member."""
    shape = MODEL.operation_model("DescribeTrainingJob").output_shape
    body = {
        "TrainingJobName": "j",
        "TrainingJobArn": "arn:aws:sagemaker:us-west-2:123456789012:training-job/j",
        "ModelArtifacts": {"S3ModelArtifacts": ""},
        "TrainingJobStatus": "Running",
        "SecondaryStatus": "Training",
        "AlgorithmSpecification": {"TrainingInputMode": "File"},
        "ResourceConfig": {"InstanceCount": "1", "VolumeSizeInGB": 5},
        "StoppingCondition": {},
        "CreationTime": 1.0,
    }
    found = {(p.path, p.constraint) for p in validation.output_problems(shape, body)}
    pattern = "Member must satisfy regular expression pattern: (https|s3)://([^/]+)/?(.*)"
    assert ("modelArtifacts.s3ModelArtifacts", pattern) in found
    statuses = "Member must satisfy enum value set: [InProgress, Completed, Failed, Stopping, Stopped, Deleting]"
    assert ("trainingJobStatus", statuses) in found
    assert ("resourceConfig.instanceCount", "Member must be of type integer") in found
    assert ("roleArn", "Member must not be null") not in found  # RoleArn is optional in the output
    assert ("inputDataConfig", "Member must not be null") not in found


# (b) one violating value per constrained request member --------------------------------------------


def _violations_for(shape: Shape) -> tuple[Any, str, str] | None:
    """A value of the right type that breaks one of ``shape``'s constraints, how AWS prints it, and
    the constraint as AWS words it; None when no such value exists."""
    meta = shape.metadata
    kind = shape.type_name
    if kind == "string":
        enum = shape.enum
        if enum:
            return "NotAnEnumValue", "NotAnEnumValue", f"Member must satisfy enum value set: [{', '.join(enum)}]"
        if "pattern" in meta:
            value = _failing_pattern(meta["pattern"], meta.get("min", 0), meta.get("max", 10**6))
            if value is not None:
                return value, value, f"Member must satisfy regular expression pattern: {meta['pattern']}"
        if "max" in meta:
            value = "x" * (meta["max"] + 1)
            return value, value, f"Member must have length less than or equal to {meta['max']}"
        if meta.get("min", 0) > 0:
            return "", "", f"Member must have length greater than or equal to {meta['min']}"
        return None
    if kind in ("integer", "long", "float", "double"):
        if "max" in meta:
            value = meta["max"] + 1
            return (
                value,
                repr(float(value)) if kind in ("float", "double") else str(value),
                (f"Member must have value less than or equal to {meta['max']}"),
            )
        if "min" in meta:
            value = meta["min"] - 1
            return (
                value,
                repr(float(value)) if kind in ("float", "double") else str(value),
                (f"Member must have value greater than or equal to {meta['min']}"),
            )
        return None
    if kind in ("list", "map"):
        item: Any = {} if (shape.member if kind == "list" else shape.value).type_name == "structure" else "x"
        if "max" in meta:
            count = meta["max"] + 1
            value = [copy.deepcopy(item) for _ in range(count)] if kind == "list" else {f"k{i}": item for i in range(count)}
            return value, None, f"Member must have length less than or equal to {meta['max']}"
        if meta.get("min", 0) > 0:
            return ([] if kind == "list" else {}), None, f"Member must have length greater than or equal to {meta['min']}"
    return None


_CANDIDATES = ["not valid!", "\n", " ", "#", "-", "_", "a b", "\x00"]


def _failing_pattern(pattern: str, low: int, high: int) -> str | None:
    """A string within the length limits that the pattern does not match (the pattern compiled by
    Python's ``re`` where it can be: an oracle apart from the service's translation)."""
    try:
        compiled = re.compile(pattern)
    except re.error:
        compiled = re.compile(validation.translate(pattern))
    for candidate in _CANDIDATES:
        value = (candidate * max(1, low // len(candidate) + 1))[: max(low, len(candidate))]
        if low <= len(value) <= high and not compiled.fullmatch(value):
            return value
    return None


def _constrained_members(shape: Shape, path: tuple, seen: frozenset = frozenset()):
    """(path in the request, member shape) for every member with a constraint, at any depth."""
    if shape.type_name == "structure":
        for name, member in shape.members.items():
            if member.name in seen:
                continue
            yield from _constrained_members(member, (*path, name), seen | {member.name})
        return
    meta = shape.metadata
    if meta.keys() & {"min", "max", "pattern", "enum"} or getattr(shape, "enum", None):
        yield path, shape
    if shape.type_name == "list" and shape.member.type_name == "structure" and shape.member.name not in seen:
        yield from _constrained_members(shape.member, (*path, 0), seen | {shape.member.name})


def _aws_path(path: tuple) -> str:
    parts = []
    for step in path:
        parts.append(f"{step + 1}.member" if isinstance(step, int) else step[:1].lower() + step[1:])
    return ".".join(parts)


def _with(request: dict[str, Any], path: tuple, value: Any) -> dict[str, Any]:
    """``request`` with the member at ``path`` set (parents made as needed)."""
    result = copy.deepcopy(request)
    node: Any = result
    for step, following in zip(path, path[1:], strict=False):
        empty: Any = [] if isinstance(following, int) else {}
        if isinstance(step, int):
            while len(node) <= step:
                node.append(empty)
            if not isinstance(node[step], type(empty)):
                node[step] = empty
        elif not isinstance(node.get(step), type(empty)):
            node[step] = empty
        node = node[step]
    last = path[-1]
    if isinstance(last, int):
        while len(node) <= last:
            node.append(None)
    node[last] = value
    return result


def test_every_constrained_request_member_is_refused_in_aws_words(walked, unchecked):
    requests, _ = walked
    client, _ = unchecked
    cases = []
    skipped = []
    for operation in OPERATIONS:
        for path, shape in _constrained_members(MODEL.operation_model(operation).input_shape, ()):
            made = _violations_for(shape)
            if made is None or shape.metadata.get("sensitive"):
                skipped.append((operation, _aws_path(path)))
                continue
            value, shown, constraint = made
            shown_part = f"Value '{shown}' at " if shown is not None else ""
            expected = f"{shown_part}'{_aws_path(path)}' failed to satisfy constraint: {constraint}"
            cases.append((operation, path, value, expected))

    def refused(case):
        operation, path, value, expected = case
        method = getattr(client, re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower())
        try:
            method(**_with(requests[operation], path, value))
        except ClientError as error:
            response = error.response
            request_id_of(response["ResponseMetadata"]["HTTPHeaders"])
            message = response["Error"]["Message"]
            ok = response["Error"]["Code"] == "ValidationException" and AWS_MESSAGE.match(message) and expected in message
            return None if ok else (operation, expected, response["Error"]["Code"], message[:300], message[-300:])
        return (operation, expected, "accepted", "")

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        failures = [f for f in pool.map(refused, cases) if f]
    print(f"\nconformance: {len(OPERATIONS)} operations, {len(cases)} members refused, {len(skipped)} skipped: {skipped}")
    assert failures == [], "\n".join(map(str, failures))
    assert len(cases) > 300


def test_the_issues_examples_are_refused_as_aws_refuses_them(ctx, unchecked):
    client, _ = unchecked
    role = ctx.role
    variant = {"VariantName": "AllTraffic", "ModelName": "m", "InitialInstanceCount": 1, "InstanceType": "ml.bogus.huge"}
    container = {"Image": "i", "ModelDataUrl": f"s3://{ctx.bucket}/m/"}
    cases = [
        (
            lambda: client.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[variant]),
            "1 validation error detected: Value 'ml.bogus.huge' at 'productionVariants.1.member.instanceType' failed to "
            "satisfy constraint: Member must satisfy enum value set: [ml.t2.medium, ml.t2.large,",
        ),
        (
            lambda: client.create_model(
                ModelName="m", ExecutionRoleArn="not-an-arn-but-twenty-chars", PrimaryContainer=container
            ),
            "1 validation error detected: Value 'not-an-arn-but-twenty-chars' at 'executionRoleArn' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: "
            "arn:aws[a-z\\-]*:iam::\\d{12}:role/?[a-zA-Z_0-9+=,.@\\-_/]+",
        ),
        (
            lambda: client.create_model(
                ModelName="m", ExecutionRoleArn=role, PrimaryContainer={**container, "ModelDataUrl": "ftp://x/y.tar.gz"}
            ),
            "Value 'ftp://x/y.tar.gz' at 'primaryContainer.modelDataUrl' failed to satisfy constraint: "
            "Member must satisfy regular expression pattern: (https|s3)://([^/]+)/?(.*)",
        ),
        (
            lambda: client.create_model(
                ModelName="m", ExecutionRoleArn=role, PrimaryContainer={**container, "Mode": "Bogus"}
            ),
            "Value 'Bogus' at 'primaryContainer.mode' failed to satisfy constraint: Member must satisfy enum value set: "
            "[SingleModel, MultiModel]",
        ),
        (
            lambda: client.list_models(SortBy="Status", MaxResults=1000),
            "2 validation errors detected: Value 'Status' at 'sortBy' failed to satisfy constraint: Member must satisfy "
            "enum value set: [Name, CreationTime]; Value '1000' at 'maxResults' failed to satisfy constraint: Member must "
            "have value less than or equal to 100",
        ),
        (
            lambda: client.list_endpoints(StatusEquals="Bogus"),
            "Value 'Bogus' at 'statusEquals' failed to satisfy constraint: Member must satisfy enum value set: "
            "[OutOfService,",
        ),
        (
            lambda: client.create_training_job(
                TrainingJobName="j",
                AlgorithmSpecification={"TrainingImage": "i", "TrainingInputMode": "File"},
                RoleArn=role,
                OutputDataConfig={"S3OutputPath": f"s3://{ctx.bucket}/o"},
                ResourceConfig={"InstanceType": "ml.m5.bogus", "InstanceCount": 1, "VolumeSizeInGB": 5},
                StoppingCondition={"MaxRuntimeInSeconds": 60},
            ),
            "1 validation error detected: Value 'ml.m5.bogus' at 'resourceConfig.instanceType' failed to satisfy "
            "constraint: Member must satisfy enum value set: [ml.m4.xlarge,",
        ),
        (
            lambda: client.create_model(ModelName="a_b", ExecutionRoleArn=role),
            "1 validation error detected: Value 'a_b' at 'modelName' failed to satisfy constraint: "
            "Member must satisfy regular expression pattern",
        ),
    ]
    for call, expected in cases:
        with pytest.raises(ClientError) as raised:
            call()
        error = raised.value.response["Error"]
        assert error["Code"] == "ValidationException"
        assert expected in error["Message"], error["Message"]
    # a request missing a required member is told so in AWS's words, together with its other errors
    with pytest.raises(ClientError) as raised:
        client.create_endpoint_config(EndpointConfigName="a_b")
    assert raised.value.response["Error"]["Message"] == (
        "2 validation errors detected: Value null at 'productionVariants' failed to satisfy constraint: Member must not "
        "be null; Value 'a_b' at 'endpointConfigName' failed to satisfy constraint: Member must satisfy regular "
        "expression pattern: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
    )


# errors and unknown operations ------------------------------------------------------------------------


def test_a_not_implemented_operation_is_named_with_a_request_id(unchecked):
    client, recorder = unchecked
    with pytest.raises(ClientError) as raised:
        client.list_notebook_instances()
    response = raised.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["Error"]["Code"] == "UnknownOperationException"
    assert "ListNotebookInstances" in response["Error"]["Message"]
    request_id_of(response["ResponseMetadata"]["HTTPHeaders"])


@pytest.mark.parametrize(
    ("operation", "params", "code", "message"),
    [
        # aws/aws-sdk#165, boto/boto3#2808: a ValidationException although the model lists ResourceNotFound
        ("DescribeTrainingJob", {"TrainingJobName": "no-such-job"}, "ValidationException", "Requested resource not found."),
        ("StopTrainingJob", {"TrainingJobName": "no-such-job"}, "ValidationException", "Requested resource not found."),
        ("DescribeModel", {"ModelName": "no-such-model"}, "ValidationException", 'Could not find model "arn:aws:sagemaker:'),
        ("DeleteModel", {"ModelName": "no-such-model"}, "ValidationException", 'Could not find model "arn:aws:sagemaker:'),
        (
            "DescribeEndpoint",
            {"EndpointName": "no-such-endpoint"},
            "ValidationException",
            'Could not find endpoint "arn:aws:sagemaker:',
        ),
        ("DeleteEndpoint", {"EndpointName": "no-such-endpoint"}, "ValidationException", 'Could not find endpoint "arn:aws:'),
        (
            "DescribeEndpointConfig",
            {"EndpointConfigName": "no-such-config"},
            "ValidationException",
            "Could not find endpoint configuration",
        ),
    ],
)
def test_not_found_errors_are_the_ones_aws_returns(unchecked, operation, params, code, message):
    client, _ = unchecked
    method = getattr(client, re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower())
    with pytest.raises(ClientError) as raised:
        method(**params)
    error = raised.value.response["Error"]
    assert (error["Code"], error["Message"].startswith(message)) == (code, True), error
    request_id_of(raised.value.response["ResponseMetadata"]["HTTPHeaders"])


# the runtime ------------------------------------------------------------------------------------------


def test_an_unknown_target_variant_is_refused(ctx, clients):
    name = unique("tv")
    prefix = f"tests/{name}/models/"
    clients.s3.put_object(Bucket=ctx.bucket, Key=prefix + "m.tar.gz", Body=model_tar())
    sm = clients.sagemaker
    from sagemaker import image_uris

    image = image_uris.retrieve(framework="xgboost", region=ctx.region, version="1.7-1")
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=ctx.role,
        PrimaryContainer={"Image": image, "Mode": "MultiModel", "ModelDataUrl": f"s3://{ctx.bucket}/{prefix}"},
    )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {"VariantName": "Blue", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    wait_for_endpoint(sm, name, poll_seconds=0.1)
    try:
        body = "1,2,3,4,5,6"
        served = clients.runtime.invoke_endpoint(
            EndpointName=name, Body=body, ContentType="text/csv", TargetModel="m.tar.gz", TargetVariant="Blue"
        )
        assert served["InvokedProductionVariant"] == "Blue"
        with pytest.raises(ClientError) as raised:
            clients.runtime.invoke_endpoint(
                EndpointName=name, Body=body, ContentType="text/csv", TargetModel="m.tar.gz", TargetVariant="Green"
            )
        response = raised.value.response
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert response["Error"]["Code"] == "ValidationError"
        assert "Green" in response["Error"]["Message"]
    finally:
        sm.delete_endpoint(EndpointName=name)


def test_the_readme_lists_the_implemented_operations():
    from pathlib import Path

    readme = Path(__file__).resolve().parents[1].joinpath("README.md").read_text()
    paragraph = readme[readme.index("The SageMaker control plane implements") :].split("; any other operation")[0]
    assert sorted(re.findall(r"`(\w+)`", paragraph)) == OPERATIONS
