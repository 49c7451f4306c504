"""Who gets an answer, and what a refused caller learns: nothing about a request (its size, whether
its endpoint exists) is answered before its signature holds; a credential scoped to another region
is refused as AWS refuses it."""

import hashlib
from functools import partial
from types import SimpleNamespace
from xml.etree import ElementTree

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from conftest import signed_headers
from test_endpoint import make_endpoint, put_model

NO_RETRIES = Config(retries={"max_attempts": 1, "mode": "standard"})
OVER_6_MB = b"1," * (3_300_000)  # 6.6 MB of CSV


@pytest.fixture(scope="module")
def endpoint(ctx, clients):
    name, prefix = make_endpoint(ctx, clients)
    put_model(ctx, clients, prefix, "m.tar.gz")
    return name


def client(info, name, region=None, **config):
    return boto3.client(
        name,
        endpoint_url=info.url,
        region_name=region or info.region,
        aws_access_key_id=info.access_key_id,
        aws_secret_access_key=info.secret_access_key,
        config=NO_RETRIES.merge(Config(**config)),
    )


def invocation(info, name):
    return f"{info.url}/endpoints/{name}/invocations"


HEADERS = {"Content-Type": "text/csv", "X-Amzn-SageMaker-Target-Model": "m.tar.gz"}


def forged(info, access_key_id=None):
    """Signing credentials that look like the service's, with a secret that is not its."""
    return SimpleNamespace(
        access_key_id=access_key_id or info.access_key_id, secret_access_key="not-the-secret", region=info.region
    )


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
def test_a_forged_signature_on_an_over_size_body_is_403_whether_or_not_the_endpoint_exists(service, endpoint, streamed):
    answers = []
    for name in (endpoint, "no-such-endpoint"):
        url = invocation(service, name)
        headers = signed_headers(forged(service), "POST", url, OVER_6_MB, HEADERS)
        if streamed:  # no Content-Length: the size is known only once the body is read
            headers.pop("Content-Length", None)
            body = (OVER_6_MB[i : i + (1 << 20)] for i in range(0, len(OVER_6_MB), 1 << 20))
        else:
            body = OVER_6_MB
        response = requests.post(url, data=body, headers=headers)
        answers.append((response.status_code, response.headers["x-amzn-ErrorType"]))
    assert answers == [(403, "InvalidSignatureException")] * 2


def test_an_unknown_key_on_an_over_size_body_is_403_before_the_body_is_read(service, endpoint):
    url = invocation(service, endpoint)
    headers = signed_headers(forged(service, "AKIAIOSFODNN7EXAMPLE"), "POST", url, OVER_6_MB, HEADERS)
    response = requests.post(url, data=OVER_6_MB, headers=headers)
    assert response.status_code == 403 and response.headers["x-amzn-ErrorType"] == "UnrecognizedClientException"


def test_a_signed_over_size_invocation_gets_the_runtime_413(service, endpoint):
    runtime = client(service, "sagemaker-runtime")
    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint(EndpointName=endpoint, TargetModel="m.tar.gz", ContentType="text/csv", Body=OVER_6_MB)
    error = raised.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 413 and error["Error"]["Code"] == "ValidationError"
    assert f"{len(OVER_6_MB):,} bytes" in error["Error"]["Message"]
    answer = runtime.invoke_endpoint(EndpointName=endpoint, TargetModel="m.tar.gz", ContentType="text/csv", Body="1,2,3")
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200  # the connection and the service are fine


# The credential's region ----------------------------------------------------------------------------


def refusal(call):
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response


def test_a_credential_for_another_region_is_refused_by_json_and_cbor_services(service, endpoint):
    for name, call in {
        "sagemaker": lambda c: c.list_endpoints(),
        "logs": lambda c: c.describe_log_groups(),
        "cloudwatch": lambda c: c.list_metrics(),
        "sagemaker-runtime": lambda c: c.invoke_endpoint(
            EndpointName=endpoint, TargetModel="m.tar.gz", ContentType="text/csv", Body="1,2,3,4,5,6"
        ),
    }.items():
        error = refusal(partial(call, client(service, name, region="eu-west-1")))
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 403, name
        assert error["Error"]["Code"] == "InvalidSignatureException", name
        assert error["Error"]["Message"] == "Credential should be scoped to a valid region, not 'eu-west-1'.", name


def test_s3_names_the_region_it_expects(ctx, service):
    url = f"{service.url}/{ctx.bucket}/anything"
    empty = {"x-amz-content-sha256": hashlib.sha256(b"").hexdigest()}
    elsewhere = SimpleNamespace(**{**vars(service), "region": "eu-west-1"})
    answer = requests.get(url, headers=signed_headers(elsewhere, "GET", url, headers=empty, service="s3"))
    assert answer.status_code == 400 and answer.headers["x-amz-bucket-region"] == service.region
    error = ElementTree.fromstring(answer.content)
    assert error.findtext("Code") == "AuthorizationHeaderMalformed"
    assert error.findtext("Message") == (
        f"The authorization header is malformed; the region 'eu-west-1' is wrong; expecting '{service.region}'"
    )
    assert error.findtext("Region") == service.region
    presigned = client(service, "s3", region="eu-west-1", signature_version="s3v4").generate_presigned_url(
        "get_object", Params={"Bucket": ctx.bucket, "Key": "anything"}
    )
    answer = requests.get(presigned)
    assert answer.status_code == 400
    assert ElementTree.fromstring(answer.content).findtext("Code") == "AuthorizationQueryParametersError"
    assert ElementTree.fromstring(answer.content).findtext("Region") == service.region


def test_boto3_follows_s3_to_the_service_region_as_on_aws(ctx, service):
    """botocore re-signs for the region S3's refusal names (its S3 region redirector)."""
    client(service, "s3").put_object(Bucket=ctx.bucket, Key="regions/one", Body=b"here")
    s3 = client(service, "s3", region="eu-west-1")
    assert s3.get_object(Bucket=ctx.bucket, Key="regions/one")["Body"].read() == b"here"
    assert s3.head_bucket(Bucket=ctx.bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_global_services_and_the_bucket_list_answer_any_region(service):
    """IAM and STS are global (on AWS botocore signs them us-east-1 from any region; given an
    endpoint URL it signs with the client's region); S3's ListBuckets is answered for us-east-1."""
    for region in ("eu-west-1", "us-east-1"):
        assert client(service, "iam", region=region).list_roles()["Roles"]
        assert client(service, "sts", region=region).get_caller_identity()["Account"]
    assert "Buckets" in client(service, "s3", region="us-east-1").list_buckets()
