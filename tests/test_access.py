"""Who gets an answer, and what a refused caller learns: nothing about a request (its size, whether
its endpoint exists) is answered before its signature holds; a credential scoped to another region
is refused as AWS refuses it."""

import hashlib
import io
import os
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


def test_an_unknown_key_on_an_over_size_body_is_403(service, endpoint):
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


# S3 bodies and the hash they were signed with ---------------------------------------------------------


def raw_put(info, url, signed_body, sent_body):
    """A PUT signed (as botocore signs S3) for ``signed_body``, sending ``sent_body``."""
    declared = {"x-amz-content-sha256": hashlib.sha256(signed_body).hexdigest()}
    headers = signed_headers(info, "PUT", url, signed_body, declared, service="s3")
    return requests.put(url, data=sent_body, headers=headers)


@pytest.mark.parametrize("size", [5, 9 * 1024 * 1024], ids=["small", "9MB"])
def test_an_s3_body_that_is_not_the_one_signed_is_refused_and_not_stored(ctx, service, size):
    s3 = client(service, "s3")
    key = f"tampered/{size}"
    s3.put_object(Bucket=ctx.bucket, Key=key, Body=b"original")
    url = f"{service.url}/{ctx.bucket}/{key}"
    signed = b"a" * size
    changed = signed[:-1] + b"b"
    answer = raw_put(service, url, signed, io.BytesIO(changed))  # a file: sent as it is read
    assert answer.status_code == 400
    error = ElementTree.fromstring(answer.content)
    assert error.findtext("Code") == "XAmzContentSHA256Mismatch"
    assert error.findtext("Message") == "The provided 'x-amz-content-sha256' header does not match what was computed."
    assert error.findtext("ClientComputedContentSHA256") == hashlib.sha256(signed).hexdigest()
    assert error.findtext("S3ComputedContentSHA256") == hashlib.sha256(changed).hexdigest()
    assert s3.get_object(Bucket=ctx.bucket, Key=key)["Body"].read() == b"original"
    assert raw_put(service, url, signed, signed).status_code == 200  # the body it was signed for is stored
    assert s3.get_object(Bucket=ctx.bucket, Key=key)["Body"].read() == signed


def test_an_s3_put_without_content_length_is_refused_as_s3_does(ctx, service):
    url = f"{service.url}/{ctx.bucket}/chunked/no-length"
    answer = raw_put(service, url, b"some data", (part for part in (b"some ", b"data")))  # Transfer-Encoding: chunked
    assert answer.status_code == 411
    assert ElementTree.fromstring(answer.content).findtext("Code") == "MissingContentLength"
    error = refusal(lambda: client(service, "s3").head_object(Bucket=ctx.bucket, Key="chunked/no-length"))
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 404  # not stored (it was stored empty)


def test_large_multipart_uploads_still_work(ctx, service, tmp_path):
    data = os.urandom(9 * 1024 * 1024)  # over boto3's 8 MB multipart threshold
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    s3 = client(service, "s3")
    s3.upload_file(str(path), ctx.bucket, "uploads/big.bin")
    assert s3.get_object(Bucket=ctx.bucket, Key="uploads/big.bin")["Body"].read() == data


def test_unsigned_and_streaming_payloads_still_work(ctx, service):
    """A presigned PUT (UNSIGNED-PAYLOAD) and boto3's aws-chunked upload with a trailing checksum
    (what it sends over HTTPS: ``STREAMING-UNSIGNED-PAYLOAD-TRAILER``) declare no body hash."""
    s3 = client(service, "s3", signature_version="s3v4")
    url = s3.generate_presigned_url("put_object", Params={"Bucket": ctx.bucket, "Key": "unsigned"})
    assert requests.put(url, data=b"no hash").status_code == 200
    assert s3.get_object(Bucket=ctx.bucket, Key="unsigned")["Body"].read() == b"no hash"
    https = boto3.client(
        "s3",
        endpoint_url=service.url.replace("http://", "https://"),
        region_name=service.region,
        aws_access_key_id=service.access_key_id,
        aws_secret_access_key=service.secret_access_key,
    )
    sent = {}

    def capture(request, **_):
        sent["headers"], sent["body"] = dict(request.headers), request.body
        raise KeyboardInterrupt  # stop before botocore connects

    https.meta.events.register("before-send", capture)
    with pytest.raises(KeyboardInterrupt):
        https.put_object(Bucket=ctx.bucket, Key="streamed", Body=b"chunked body")
    assert sent["headers"]["X-Amz-Content-SHA256"] == b"STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    body = sent["body"] if isinstance(sent["body"], bytes) else sent["body"].read()
    headers = {name: value for name, value in sent["headers"].items() if name != "Transfer-Encoding"}
    answer = requests.put(f"{service.url}/{ctx.bucket}/streamed", data=iter([body]), headers=headers)  # chunked
    assert answer.status_code == 200, answer.text
    assert s3.get_object(Bucket=ctx.bucket, Key="streamed")["Body"].read() == b"chunked body"


# Operations the service does not implement ----------------------------------------------------------


def test_an_unimplemented_operation_is_answered_in_the_caller_protocol(ctx, service):
    cases = {
        "iam (query)": (
            lambda: client(service, "iam").generate_organizations_access_report(EntityPath="o-a1b2c3d4e5/r-ab12"),
            400,
            "InvalidAction",
            "GenerateOrganizationsAccessReport",
        ),
        "logs (json)": (
            lambda: client(service, "logs").get_log_anomaly_detector(anomalyDetectorArn="arn:aws:logs:x"),
            400,
            "UnknownOperationException",
            "GetLogAnomalyDetector",
        ),
        "cloudwatch (cbor)": (
            lambda: client(service, "cloudwatch").get_metric_widget_image(MetricWidget="{}"),
            400,
            "UnknownOperationException",
            "GetMetricWidgetImage",
        ),
        "s3 (rest-xml)": (
            lambda: client(service, "s3").create_bucket_metadata_table_configuration(
                Bucket=ctx.bucket,
                MetadataTableConfiguration={
                    "S3TablesDestination": {
                        "TableBucketArn": "arn:aws:s3tables:us-west-2:123456789012:bucket/t",
                        "TableName": "t",
                    }
                },
            ),
            501,
            "NotImplemented",
            "CreateBucketMetadataTableConfiguration",
        ),
        "sagemaker (json)": (
            lambda: client(service, "sagemaker").describe_domain(DomainId="d-1"),
            400,
            "UnknownOperationException",
            "DescribeDomain",
        ),
    }
    for what, (call, status, code, operation) in cases.items():
        error = refusal(call)
        assert (error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"]) == (status, code), what
        assert operation in error["Error"]["Message"], what
    assert client(service, "iam").list_roles()["Roles"]  # and the service serves on
