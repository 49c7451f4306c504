"""The local service answers only requests signed with the credentials it generated: every
protocol (S3, the SageMaker control plane, the runtime, CloudWatch, Logs, ``/_local``) refuses
unsigned, unknown-key, badly signed and expired requests with AWS's 403 and error code."""

import datetime as dt

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from conftest import signed_headers
from test_endpoint import make_endpoint, put_model

NO_RETRIES = Config(retries={"max_attempts": 1, "mode": "standard"})


def client(service_info, name, key=None, secret=None):
    return boto3.client(
        name,
        endpoint_url=service_info.url,
        region_name=service_info.region,
        aws_access_key_id=key or service_info.access_key_id,
        aws_secret_access_key=secret or service_info.secret_access_key,
        config=NO_RETRIES,
    )


@pytest.fixture(scope="module")
def endpoint(ctx, clients):
    name, prefix = make_endpoint(ctx, clients)
    put_model(ctx, clients, prefix, "m.tar.gz")
    return name


def calls(info, endpoint, key=None, secret=None):
    """One call per protocol, as boto3 makes them."""
    return {
        "s3 (rest-xml)": lambda: client(info, "s3", key, secret).list_buckets(),
        "sagemaker (json)": lambda: client(info, "sagemaker", key, secret).list_endpoints(),
        "runtime (rest-json)": lambda: client(info, "sagemaker-runtime", key, secret).invoke_endpoint(
            EndpointName=endpoint, TargetModel="m.tar.gz", ContentType="text/csv", Body="1,2,3,4,5,6"
        ),
        "cloudwatch (cbor)": lambda: client(info, "cloudwatch", key, secret).list_metrics(),
        "logs (json)": lambda: client(info, "logs", key, secret).describe_log_groups(),
        "iam (query)": lambda: client(info, "iam", key, secret).list_roles(),
    }


def refusal(call):
    with pytest.raises(ClientError) as raised:
        call()
    error = raised.value.response
    return error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"]


def test_the_service_own_credentials_work_everywhere(service, endpoint):
    for what, call in calls(service, endpoint).items():
        assert call() is not None, what


def test_an_unknown_access_key_is_refused_in_every_protocol(service, endpoint):
    expected = {
        "s3 (rest-xml)": "InvalidAccessKeyId",
        "sagemaker (json)": "UnrecognizedClientException",
        "runtime (rest-json)": "UnrecognizedClientException",
        "cloudwatch (cbor)": "UnrecognizedClientException",
        "logs (json)": "UnrecognizedClientException",
        "iam (query)": "InvalidClientTokenId",
    }
    for what, call in calls(service, endpoint, key="AKIAIOSFODNN7EXAMPLE", secret="x" * 40).items():
        assert refusal(call) == (403, expected[what]), what


def test_a_wrong_secret_is_a_signature_mismatch(service, endpoint):
    expected = {
        "s3 (rest-xml)": "SignatureDoesNotMatch",
        "sagemaker (json)": "InvalidSignatureException",
        "runtime (rest-json)": "InvalidSignatureException",
        "cloudwatch (cbor)": "InvalidSignatureException",
        "logs (json)": "InvalidSignatureException",
        "iam (query)": "SignatureDoesNotMatch",
    }
    for what, call in calls(service, endpoint, secret="not-the-secret").items():
        assert refusal(call) == (403, expected[what]), what


def test_unsigned_requests_are_refused_with_a_403(service, endpoint):
    url = service.url
    invocation = requests.post(
        f"{url}/endpoints/{endpoint}/invocations",
        data=b"1,2,3,4,5,6",
        headers={"Content-Type": "text/csv", "X-Amzn-SageMaker-Target-Model": "m.tar.gz"},
    )
    assert invocation.status_code == 403  # it used to be a 500
    assert invocation.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    control = requests.post(
        url + "/",
        data=b"{}",
        headers={"X-Amz-Target": "SageMaker.ListEndpoints", "Content-Type": "application/x-amz-json-1.1"},
    )
    assert control.status_code == 403 and control.json()["__type"] == "MissingAuthenticationTokenException"
    bucket = requests.get(f"{url}/sagemaker-{service.region}-123456789012")
    assert bucket.status_code == 403 and "<Code>AccessDenied</Code>" in bucket.text
    admin = requests.get(f"{url}/_local/health")
    assert admin.status_code == 403
    stranger = requests.get(f"{url}/_local/health", headers={"Authorization": "AWS4-HMAC-SHA256 nonsense"})
    assert stranger.status_code == 403 and stranger.headers["x-amzn-ErrorType"] == "IncompleteSignatureException"


def test_an_expired_signature_is_refused(service, endpoint):
    url = f"{service.url}/endpoints/{endpoint}/invocations"
    headers = {"Content-Type": "text/csv", "X-Amzn-SageMaker-Target-Model": "m.tar.gz"}
    body = b"1,2,3,4,5,6"
    stale = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20)
    response = requests.post(url, data=body, headers=signed_headers(service, "POST", url, body, headers, when=stale))
    assert response.status_code == 403 and response.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    assert "Signature expired" in response.json()["message"]
    fresh = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)  # within AWS's 15 minutes of skew
    assert requests.post(url, data=body, headers=signed_headers(service, "POST", url, body, headers, when=fresh)).ok


def test_an_s3_request_signed_too_long_ago_is_request_time_too_skewed(service):
    """S3's own code for a clock more than 15 minutes off (the JSON services': Signature expired)."""
    from unittest import mock

    stale = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20)
    s3 = client(service, "s3")
    with mock.patch("botocore.auth.get_current_datetime", return_value=stale):
        assert refusal(s3.list_buckets) == (403, "RequestTimeTooSkewed")
    assert s3.list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_a_body_changed_after_signing_is_refused(service, endpoint):
    url = f"{service.url}/endpoints/{endpoint}/invocations"
    headers = signed_headers(
        service, "POST", url, b"1,2,3,4,5,6", {"Content-Type": "text/csv", "X-Amzn-SageMaker-Target-Model": "m.tar.gz"}
    )
    response = requests.post(url, data=b"9,9,9,9,9,9", headers=headers)
    assert response.status_code == 403 and response.headers["x-amzn-ErrorType"] == "InvalidSignatureException"


@pytest.mark.parametrize("version", ["s3", "s3v4"])  # boto3's default for S3 presigning, and SigV4
def test_presigned_s3_urls_work_until_they_expire(ctx, service, version):
    s3 = boto3.client(
        "s3",
        endpoint_url=service.url,
        region_name=service.region,
        aws_access_key_id=service.access_key_id,
        aws_secret_access_key=service.secret_access_key,
        config=Config(signature_version=version),
    )
    key = "presigned/a b+c.txt"
    client(service, "s3").put_object(Bucket=ctx.bucket, Key=key, Body=b"hello")

    def presign(seconds):
        return s3.generate_presigned_url("get_object", Params={"Bucket": ctx.bucket, "Key": key}, ExpiresIn=seconds)

    url = presign(60)
    assert requests.get(url).content == b"hello"
    tampered = url.replace("a%20b", "a%20c")  # another object than the one signed for
    assert "<Code>SignatureDoesNotMatch</Code>" in requests.get(tampered).text
    expired = requests.get(presign(-1))
    assert expired.status_code == 403 and "<Code>AccessDenied</Code>" in expired.text
    assert "Request has expired" in expired.text


def test_the_service_keeps_serving_after_refusals(service, endpoint):
    for _ in range(20):
        requests.post(f"{service.url}/endpoints/{endpoint}/invocations", data=b"x")
    assert calls(service, endpoint)["runtime (rest-json)"]()["ResponseMetadata"]["HTTPStatusCode"] == 200
