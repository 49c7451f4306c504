"""The multi-model endpoint: both call paths of the example, the container's formats, every
error of the contract, caching, eviction and metrics."""

import concurrent.futures
import json

import numpy as np
import pytest
import sagemaker
from botocore.exceptions import ClientError
from conftest import model_file, model_tar, signed_headers, train_booster, unique, wait_until
from sagemaker.deserializers import JSONDeserializer
from sagemaker.multidatamodel import MultiDataModel
from sagemaker.predictor import Predictor
from sagemaker.serializers import CSVSerializer

from mme_helpers.endpoint import loaded_models, wait_for_endpoint
from mme_helpers.invoke import predict_one_house_value
from mme_helpers.sagemaker_hosting import RESIDENT_FACTOR

IMAGE = "246618743249.dkr.ecr.us-west-2.amazonaws.com/sagemaker-xgboost:1.7-1"
HOUSE = [2005, 3000, 3, 2.0, 1.0, 2]


def make_endpoint(
    ctx, clients, *, mode="MultiModel", environment=None, cache="Enabled", instance="ml.m5.large", model_data=None
):
    """An endpoint made with boto3, as a script would; returns (name, S3 prefix key)."""
    name = unique("ep")
    prefix = f"tests/{name}/models/"
    container = {
        "Image": IMAGE,
        "Mode": mode,
        "Environment": environment or {},
        "ModelDataUrl": model_data or f"s3://{ctx.bucket}/{prefix}",
    }
    if mode == "MultiModel":
        container["MultiModelConfig"] = {"ModelCacheSetting": cache}
    sm = clients.sagemaker
    sm.create_model(ModelName=name, ExecutionRoleArn=ctx.role, PrimaryContainer=container)
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": instance}
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    wait_for_endpoint(sm, name, poll_seconds=0.2)
    return name, prefix


def put_model(ctx, clients, prefix, key, booster=None, body=None):
    clients.s3.put_object(Bucket=ctx.bucket, Key=prefix + key, Body=body if body is not None else model_tar(booster))


def invoke(clients, endpoint, body, target="m.tar.gz", **kwargs):
    if target is not None:
        kwargs["TargetModel"] = target
    response = clients.runtime.invoke_endpoint(EndpointName=endpoint, Body=body, **kwargs)
    return response["Body"].read().decode(), response


def error_of(call):
    with pytest.raises(ClientError) as raised:
        call()
    response = raised.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"], response["Error"]["Message"], response


@pytest.fixture(scope="module")
def mme(ctx, clients):
    name, prefix = make_endpoint(ctx, clients)
    booster = train_booster()
    put_model(ctx, clients, prefix, "m.tar.gz", booster)
    return name, prefix, booster


# the example's two call paths ---------------------------------------------------------------------


def test_sdk_multidatamodel_flow(ctx, clients):
    """deploy(wait=False) + waiter, list_models, add_model, predict with target_model."""
    name = unique("sdk")
    prefix = f"s3://{ctx.bucket}/tests/{name}/"
    source_key = f"tests/{name}-source/model.tar.gz"
    booster = train_booster(scale=1000)
    clients.s3.put_object(Bucket=ctx.bucket, Key=source_key, Body=model_tar(booster))
    model = sagemaker.model.Model(
        image_uri=IMAGE, model_data=f"s3://{ctx.bucket}/{source_key}", role=ctx.role, sagemaker_session=ctx.sagemaker_session
    )
    mme = MultiDataModel(name=name, model_data_prefix=prefix, model=model, sagemaker_session=ctx.sagemaker_session)
    mme.deploy(initial_instance_count=1, instance_type="ml.m5.xlarge", endpoint_name=name, wait=False)
    assert wait_for_endpoint(clients.sagemaker, name, 0.2)["EndpointStatus"] == "InService"
    assert list(mme.list_models()) == []
    mme.add_model(model_data_source=f"s3://{ctx.bucket}/{source_key}", model_data_path="Chicago_IL.tar.gz")
    assert list(mme.list_models()) == ["Chicago_IL.tar.gz"]
    predictor = Predictor(name, ctx.sagemaker_session, serializer=CSVSerializer(), deserializer=JSONDeserializer())
    expected = float(booster.inplace_predict(np.array([HOUSE], dtype=np.float32))[0])
    assert predictor.predict(data=HOUSE, target_model="Chicago_IL.tar.gz") == [pytest.approx(expected, rel=1e-6)]
    # the boto3 helper of the example, calling its own argument's model
    price, _ = predict_one_house_value(clients.runtime, name, HOUSE, "Chicago_IL.tar.gz")
    assert price == pytest.approx(expected, rel=1e-6)


def test_cold_then_warm(ctx, clients, mme):
    name, prefix, _ = mme
    put_model(ctx, clients, prefix, "cold.tar.gz")
    invoke(clients, name, "1,2,3,4,5,6", "cold.tar.gz", ContentType="text/csv")
    invoke(clients, name, "1,2,3,4,5,6", "cold.tar.gz", ContentType="text/csv")
    state = loaded_models(name).loc["cold.tar.gz"]
    assert (state["misses"], state["hits"], state["loads"], state["state"]) == (1, 1, 1, "in memory")
    assert state["download_ms"] > 0 and state["load_ms"] > 0


# formats -----------------------------------------------------------------------------------------------


def test_multi_row_csv_gives_one_prediction_per_row(clients, mme):
    name, _, booster = mme
    rows = np.random.default_rng(1).random((5, 6)).round(3)
    body = "\n".join(",".join(map(str, r)) for r in rows) + "\n"
    text, response = invoke(clients, name, body, ContentType="text/csv")
    assert response["ContentType"] == "application/json" and response["InvokedProductionVariant"] == "AllTraffic"
    assert json.loads(text) == pytest.approx(booster.inplace_predict(rows.astype(np.float32)).tolist(), rel=1e-6)


@pytest.mark.parametrize("content_type", ["text/csv", "csv", "TEXT/CSV; charset=utf-8"])
def test_csv_content_types(clients, mme, content_type):
    assert json.loads(invoke(clients, mme[0], "1,2,3,4,5,6", ContentType=content_type)[0])


def test_csv_delimiter_missing_values_and_fewer_features(clients, mme):
    name, _, booster = mme
    tab = json.loads(invoke(clients, name, "1\t2\t3\t4\t5\t6", ContentType="text/csv")[0])
    comma = json.loads(invoke(clients, name, "1,2,3,4,5,6", ContentType="text/csv")[0])
    assert tab == comma
    missing = json.loads(invoke(clients, name, "1,,3,4,5,6", ContentType="text/csv")[0])[0]
    expected = booster.inplace_predict(np.array([[1, np.nan, 3, 4, 5, 6]], dtype=np.float32))[0]
    assert missing == pytest.approx(float(expected), rel=1e-6)
    fewer = json.loads(invoke(clients, name, "1,2,3", ContentType="text/csv")[0])[0]
    expected = booster.inplace_predict(np.array([[1, 2, 3, np.nan, np.nan, np.nan]], dtype=np.float32))[0]
    assert fewer == pytest.approx(float(expected), rel=1e-6)


@pytest.mark.parametrize("content_type", ["text/libsvm", "text/x-libsvm", "libsvm", None])
def test_libsvm_and_no_content_type(clients, mme, content_type):
    name, _, booster = mme
    kwargs = {"ContentType": content_type} if content_type else {}
    text, _ = invoke(clients, name, "0:1 1:2 2:3 3:4 4:5 5:6\n0 0:2 5:1", **kwargs)
    expected = booster.inplace_predict(np.array([[1, 2, 3, 4, 5, 6], [2] + [np.nan] * 4 + [1]], dtype=np.float32))
    assert json.loads(text) == pytest.approx(expected.tolist(), rel=1e-6)


@pytest.mark.parametrize(
    "accept, content_type",
    [
        (None, "application/json"),
        ("*/*", "application/json"),
        ("application/json", "application/json"),
        ("json", "json"),
        ("text/csv", "text/csv"),
        ("csv", "csv"),
    ],
)
def test_accept_variants(clients, mme, accept, content_type):
    name, _, booster = mme
    kwargs = {"Accept": accept} if accept else {}
    text, response = invoke(clients, name, "1,2,3,4,5,6\n6,5,4,3,2,1", ContentType="text/csv", **kwargs)
    assert response["ContentType"] == content_type
    expected = booster.inplace_predict(np.array([[1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]], dtype=np.float32))
    if "csv" in content_type:
        assert text == ",".join(map(str, expected)) and "\n" not in text
    else:
        assert text == json.dumps(expected.tolist())


def test_model_default_accept(ctx, clients):
    name, prefix = make_endpoint(ctx, clients, environment={"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv"})
    put_model(ctx, clients, prefix, "m.tar.gz")
    text, response = invoke(clients, name, "1,2,3,4,5,6", ContentType="text/csv")
    assert response["ContentType"] == "text/csv" and float(text)


# the error table --------------------------------------------------------------------------------------------


def test_unknown_endpoint(clients):
    status, code, message, _ = error_of(lambda: invoke(clients, "no-such-endpoint", "1"))
    assert (status, code) == (400, "ValidationError")
    assert message == "Endpoint no-such-endpoint of account 123456789012 not found."


def test_missing_target_model(clients, mme):
    status, code, message, _ = error_of(lambda: invoke(clients, mme[0], "1,2", target=None, ContentType="text/csv"))
    assert (status, code) == (400, "ValidationError")
    assert message.startswith("Request ") and message.endswith(" is missing a target model header.")


def test_target_model_not_in_s3(ctx, clients, mme):
    status, code, message, _ = error_of(lambda: invoke(clients, mme[0], "1,2", "nope/x.tar.gz", ContentType="text/csv"))
    assert (status, code) == (400, "ValidationError")
    assert f"Failed to download model data(bucket: {ctx.bucket}, key: {mme[1]}nope/x.tar.gz)" in message


def test_target_model_on_a_single_model_endpoint(ctx, clients):
    key = f"tests/{unique('single')}/model.tar.gz"
    booster = train_booster(scale=3)
    clients.s3.put_object(Bucket=ctx.bucket, Key=key, Body=model_tar(booster))
    name, _ = make_endpoint(ctx, clients, mode="SingleModel", model_data=f"s3://{ctx.bucket}/{key}")
    text, _ = invoke(clients, name, "1,2,3,4,5,6", target=None, ContentType="text/csv")
    assert json.loads(text)[0] == pytest.approx(
        float(booster.inplace_predict(np.array([[1, 2, 3, 4, 5, 6.0]]))[0]), rel=1e-6
    )
    status, code, message, _ = error_of(lambda: invoke(clients, name, "1,2,3,4,5,6", "m.tar.gz", ContentType="text/csv"))
    assert (status, code) == (400, "ValidationError")
    assert message == f"Endpoint {name} is not a multi-model endpoint and does not support target model header."


@pytest.mark.parametrize(
    "body, kwargs, cause",
    [
        ("1,2,3,4,5,6,7", {"ContentType": "text/csv"}, "the model expects 6 features, the request has 7"),
        ("1,2,x,4,5,6", {"ContentType": "text/csv"}, "'x' is not a number"),
        ("1,2,3\n1,2", {"ContentType": "text/csv"}, "CSV row 2 has 2 values, row 1 has 3"),
        ("[1,2,3,4,5,6]", {"ContentType": "application/json"}, "Content type application/json is not supported"),
        ("1,2,3,4,5,6", {"ContentType": "application/x-parquet"}, "not supported"),
        ("1,2,3,4,5,6", {"ContentType": "text/csv", "Accept": "application/jsonlines"}, "Accept type application/jsonlines"),
        ("1,2,3,4,5,6", {"ContentType": "text/csv", "Accept": "text/csv, application/json"}, "Accept type"),
        ("", {"ContentType": "text/csv"}, "body is empty"),
        (b"\xff\xfe", {"ContentType": "text/csv"}, "not UTF-8"),
    ],
)
def test_container_side_failures_are_model_errors_with_the_cause(clients, mme, body, kwargs, cause):
    status, code, message, response = error_of(lambda: invoke(clients, mme[0], body, **kwargs))
    assert (status, code) == (424, "ModelError")
    assert message.startswith("Received server error (503) from primary with message")
    assert cause in message
    assert response["OriginalStatusCode"] == 503
    assert json.loads(response["OriginalMessage"])["code"] == 503
    assert response["LogStreamArn"].startswith("arn:aws:logs:")


GOOD_ROW = "1,2,3,4,5,6"


@pytest.mark.parametrize(
    "body, content_type, cause",
    [
        # a feature index far beyond the model: refused by index, nothing allocated for it
        ("0:1 1099511627776:1", "text/libsvm", "libsvm row 1 has feature index 1099511627776; the model has 6 features"),
        ("0:1 2:1\n6:1", None, "libsvm row 2 has feature index 6; the model has 6 features"),
        ("-1:3", "text/libsvm", "libsvm row 1: negative feature index -1"),
        ("0:1 1:abc", "text/libsvm", "libsvm row 1: '1:abc' is not index:value"),
        ("0:1 3::2", "text/libsvm", "'3::2' is not index:value"),
        ("0:1 :5", "libsvm", "':5' is not index:value"),
        ("0:1 1e3:5", "libsvm", "'1e3:5' is not index:value"),
        ("1,2,nan?,4,5,6", "text/csv", "CSV row 1, column 3: 'nan?' is not a number"),
        ("1,2,3,4,5,6,7", "text/csv", "the model expects 6 features, the request has 7"),
        (",".join(["1"] * 1_000_000), "text/csv", "the model expects 6 features, the request has 1000000"),
        ("", "text/csv", "the request body is empty"),
        ("  \n ", "text/libsvm", "the request body is empty"),
        ("", None, "the request body is empty"),
        ("1,2,3,4,5,6", "application/x-recordio-protobuf", "not supported"),
    ],
)
def test_every_decoding_failure_is_a_model_error_with_its_cause_and_the_endpoint_keeps_serving(
    clients, mme, body, content_type, cause
):
    kwargs = {"ContentType": content_type} if content_type else {}
    status, code, message, response = error_of(lambda: invoke(clients, mme[0], body, **kwargs))
    assert (status, code, response["OriginalStatusCode"]) == (424, "ModelError", 503), message
    assert cause in message and cause in json.loads(response["OriginalMessage"])["message"]
    assert json.loads(invoke(clients, mme[0], GOOD_ROW, ContentType="text/csv")[0])  # still serving


def _peak_rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))


def test_a_large_feature_index_allocates_nothing(service, clients, mme):
    """An index of 10^8 once made a 400 MB row before XGBoost refused it; it is now refused on sight."""
    with open(f"/proc/{service.pid}/clear_refs", "w") as clear:
        clear.write("5")  # reset the service's peak resident size
    before = _peak_rss_bytes(service.pid)
    status, code, message, _ = error_of(lambda: invoke(clients, mme[0], "0:1 100000000:1", ContentType="text/libsvm"))
    assert (status, code) == (424, "ModelError") and "feature index 100000000" in message
    assert _peak_rss_bytes(service.pid) - before < 50 * 2**20


def test_unloadable_models_are_model_errors(ctx, clients, mme):
    name, prefix, _ = mme
    cases = {
        "not-a-tar.tar.gz": (b"this is not an archive", "not a tar.gz archive"),
        "empty.tar.gz": (model_tar(files={}), "holds no model file"),
        "garbage.tar.gz": (model_tar(files={"xgboost-model": b'{"not": "a model"}'}), "not an XGBoost model"),
        "pickle.tar.gz": (model_tar(files={"xgboost-model": b"\x80\x04\x95junk"}), "pickle"),
        "escape.tar.gz": (model_tar(files={"../../escape": b"x"}), "unsafe path"),
    }
    for key, (body, cause) in cases.items():
        put_model(ctx, clients, prefix, key, body=body)
        status, code, message, _ = error_of(lambda k=key: invoke(clients, name, "1,2,3,4,5,6", k, ContentType="text/csv"))
        assert (status, code) == (424, "ModelError") and cause in message, (key, message)
    assert json.loads(invoke(clients, name, "1,2,3,4,5,6", ContentType="text/csv")[0])  # still serving


def test_payload_over_6_mb_is_refused(clients, mme):
    body = b"1," * (3 * 1024 * 1024 + 10)
    status, code, message, _ = error_of(lambda: invoke(clients, mme[0], body, ContentType="text/csv"))
    assert (status, code) == (413, "ValidationError") and "6,291,456 bytes" in message
    assert json.loads(invoke(clients, mme[0], "1,2,3,4,5,6", ContentType="text/csv")[0])


def test_target_model_over_1024_characters_is_refused(service, mme):
    import requests

    url = f"{service.url}/endpoints/{mme[0]}/invocations"
    headers = {"X-Amzn-SageMaker-Target-Model": "m" * 1025, "Content-Type": "text/csv"}
    response = requests.post(url, data=b"1,2", headers=signed_headers(service, "POST", url, b"1,2", headers))
    assert response.status_code == 400 and response.headers["x-amzn-ErrorType"] == "ValidationError"
    assert "1024" in response.json()["Message"]


def test_ensembles_average_their_models(ctx, clients, mme):
    name, prefix, _ = mme
    a, b = train_booster(scale=1), train_booster(scale=3)
    files = {"model-a": model_file(a), "model-b": model_file(b), ".hidden": b"skipped"}
    put_model(ctx, clients, prefix, "ensemble.tar.gz", body=model_tar(files=files))
    x = np.array([[1, 2, 3, 4, 5, 6]], dtype=np.float32)
    got = json.loads(invoke(clients, name, "1,2,3,4,5,6", "ensemble.tar.gz", ContentType="text/csv")[0])[0]
    assert got == pytest.approx(float((a.inplace_predict(x)[0] + b.inplace_predict(x)[0]) / 2), rel=1e-5)


# caching --------------------------------------------------------------------------------------------------------


def test_lru_eviction_under_a_small_memory_budget(ctx, clients):
    booster = train_booster()
    model_bytes = int(len(model_file(booster)) * RESIDENT_FACTOR)  # in memory
    budget_mb = 2.5 * model_bytes / 1e6  # room for two models (decimal MB)
    name, prefix = make_endpoint(ctx, clients, environment={"MME_LOCAL_MEMORY_BUDGET_MB": str(budget_mb)})
    for key in "abc":
        put_model(ctx, clients, prefix, f"{key}.tar.gz", booster)
    call = lambda key: invoke(clients, name, "1,2,3,4,5,6", f"{key}.tar.gz", ContentType="text/csv")  # noqa: E731
    call("a"), call("b"), call("a"), call("c")  # c needs room: b is the least recently used
    state = loaded_models(name)
    assert state.attrs["loaded_models"] == ["a.tar.gz", "c.tar.gz"]
    assert state.loc["b.tar.gz", "state"] == "on disk" and state.loc["b.tar.gz", "evictions"] == 1
    call("b")  # from the disk cache: no new download
    state = loaded_models(name)
    assert state.loc["b.tar.gz", "loads"] == 2 and state.loc["b.tar.gz", "misses"] == 2
    assert state.attrs["memory_used_bytes"] <= state.attrs["memory_budget_bytes"]


def test_the_disk_budget_keeps_the_most_recently_used_copies(ctx, clients):
    """MME_LOCAL_DISK_BUDGET_MB: a copy on disk is its archive plus its unpacked file; a budget of 2.5
    copies keeps the two most recent ones (models in memory keep serving)."""
    artifact = model_tar(train_booster())
    copy = len(artifact) + len(model_file())
    budget_mb = str(2.5 * copy / 1e6)
    name, prefix = make_endpoint(ctx, clients, environment={"MME_LOCAL_DISK_BUDGET_MB": budget_mb})
    for key in "abc":
        put_model(ctx, clients, prefix, f"{key}.tar.gz", body=artifact)
        invoke(clients, name, "1,2,3,4,5,6", f"{key}.tar.gz", ContentType="text/csv")
    state = loaded_models(name)
    assert abs(state.attrs["disk_budget_bytes"] - 2.5 * copy) <= 1  # decimal MB: 2.5 copies, to the byte
    assert state.attrs["disk_used_bytes"] == 2 * copy
    assert state.attrs["loaded_models"] == ["a.tar.gz", "b.tar.gz", "c.tar.gz"]
    clients.s3.delete_object(Bucket=ctx.bucket, Key=prefix + "a.tar.gz")
    assert json.loads(invoke(clients, name, "1,2,3,4,5,6", "a.tar.gz", ContentType="text/csv")[0])  # from memory


def test_model_larger_than_the_budget_is_a_clear_error(ctx, clients):
    name, prefix = make_endpoint(ctx, clients, environment={"MME_LOCAL_MEMORY_BUDGET_MB": "0.001"})
    put_model(ctx, clients, prefix, "big.tar.gz")
    status, code, message, response = error_of(lambda: invoke(clients, name, "1,2", "big.tar.gz", ContentType="text/csv"))
    assert (status, code) == (424, "ModelError") and "budget" in message and response["OriginalStatusCode"] == 507


def test_concurrent_cold_requests_share_one_download_and_one_load(ctx, clients, mme):
    name, prefix, _ = mme
    put_model(ctx, clients, prefix, "crowd.tar.gz")
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(
            pool.map(lambda _: invoke(clients, name, "1,2,3,4,5,6", "crowd.tar.gz", ContentType="text/csv")[0], range(32))
        )
    assert len(set(results)) == 1
    state = loaded_models(name).loc["crowd.tar.gz"]
    assert state["loads"] == 1 and state["hits"] + state["misses"] == 32


def test_overwritten_artifact_keeps_serving_the_cached_model(ctx, clients, mme):
    name, prefix, _ = mme
    put_model(ctx, clients, prefix, "v.tar.gz", train_booster(scale=1))
    before = invoke(clients, name, "1,2,3,4,5,6", "v.tar.gz", ContentType="text/csv")[0]
    put_model(ctx, clients, prefix, "v.tar.gz", train_booster(scale=50))
    assert invoke(clients, name, "1,2,3,4,5,6", "v.tar.gz", ContentType="text/csv")[0] == before
    put_model(ctx, clients, prefix, "v2.tar.gz", train_booster(scale=50))
    assert invoke(clients, name, "1,2,3,4,5,6", "v2.tar.gz", ContentType="text/csv")[0] != before


def test_cache_disabled_loads_every_time(ctx, clients):
    name, prefix = make_endpoint(ctx, clients, cache="Disabled")
    put_model(ctx, clients, prefix, "m.tar.gz", train_booster(scale=1))
    first = invoke(clients, name, "1,2,3,4,5,6", ContentType="text/csv")[0]
    put_model(ctx, clients, prefix, "m.tar.gz", train_booster(scale=50))
    second = invoke(clients, name, "1,2,3,4,5,6", ContentType="text/csv")[0]
    assert first != second  # nothing was cached, so the overwrite is seen
    state = loaded_models(name)
    assert state.loc["m.tar.gz", "loads"] == 2 and state.attrs["loaded_models"] == []


# control plane and metrics ---------------------------------------------------------------------------------------


def test_endpoint_lifecycle_and_errors(ctx, clients):
    sm = clients.sagemaker
    name, _ = make_endpoint(ctx, clients)
    described = sm.describe_endpoint(EndpointName=name)
    assert described["EndpointStatus"] == "InService" and described["EndpointConfigName"] == name
    assert sm.describe_endpoint_config(EndpointConfigName=name)["ProductionVariants"][0]["ModelName"] == name
    status, code, message, _ = error_of(
        lambda: sm.create_model(ModelName=name, ExecutionRoleArn=ctx.role, PrimaryContainer={"Image": IMAGE})
    )
    assert code == "ValidationException" and "Cannot create already existing model" in message
    _, code, message, _ = error_of(lambda: sm.create_endpoint(EndpointName=name, EndpointConfigName=name))
    assert "Cannot create already existing endpoint" in message
    sm.delete_endpoint(EndpointName=name)
    _, code, _, _ = error_of(lambda: invoke(clients, name, "1"))  # Deleting: no longer serves
    assert code == "ValidationError"

    def gone():
        try:
            return sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "Deleting" and None
        except ClientError as error:
            return error.response["Error"]

    error = wait_until(gone)
    assert error["Code"] == "ValidationException" and "Could not find endpoint" in error["Message"]
    sm.delete_endpoint_config(EndpointConfigName=name)
    sm.delete_model(ModelName=name)


def not_xgboost_model(ctx, clients, name, prefix):
    """A model local mode cannot serve: provisioning it fails with a reason."""
    clients.sagemaker.create_model(
        ModelName=name,
        ExecutionRoleArn=ctx.role,
        PrimaryContainer={
            "Image": "123456789012.dkr.ecr.us-west-2.amazonaws.com/not-xgboost:1",
            "Mode": "MultiModel",
            "ModelDataUrl": f"s3://{ctx.bucket}/{prefix}",
        },
    )


def test_endpoint_fails_with_a_reason(ctx, clients):
    sm = clients.sagemaker
    name = unique("bad")
    not_xgboost_model(ctx, clients, name, "x/")
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    failed = wait_until(lambda: (d := sm.describe_endpoint(EndpointName=name))["EndpointStatus"] == "Failed" and d)
    assert "only the built-in XGBoost image" in failed["FailureReason"]
    with pytest.raises(Exception, match="Failed"):
        wait_for_endpoint(sm, name, 0.2, max_minutes=0.02)


def test_metrics_reach_cloudwatch(ctx, clients):
    """One cold model invoked three times, then once with a row it cannot read (a ModelError), on an
    endpoint of its own: exact counts of every metric the README lists, nothing else's traffic."""
    import datetime as dt

    name, prefix = make_endpoint(ctx, clients)
    put_model(ctx, clients, prefix, "metrics.tar.gz")
    for _ in range(3):
        invoke(clients, name, "1,2,3,4,5,6", "metrics.tar.gz", ContentType="text/csv")
    status, code, _, _ = error_of(lambda: invoke(clients, name, "1,2,3,4,5,6,7", "metrics.tar.gz", ContentType="text/csv"))
    assert (status, code) == (424, "ModelError")
    dims = [{"Name": "EndpointName", "Value": name}, {"Name": "VariantName", "Value": "AllTraffic"}]
    now = dt.datetime.now(dt.UTC)

    def stat(metric, namespace="AWS/SageMaker"):
        points = clients.cloudwatch.get_metric_statistics(
            Namespace=namespace,
            MetricName=metric,
            Dimensions=dims,
            StartTime=now - dt.timedelta(hours=1),
            EndTime=now + dt.timedelta(minutes=5),
            Period=3600,
            Statistics=["SampleCount", "Sum", "Maximum"],
        )["Datapoints"]
        return points[0] if points else None

    expected = {  # metric: (samples, sum) for 1 miss, 2 hits, then a hit that is a ModelError
        "Invocations": (4, 4),
        "ModelCacheHit": (4, 3),
        "Invocation4XXErrors": (4, 1),
        "Invocation5XXErrors": (4, 0),  # AWS: "For each 5XX response, 1 is sent; otherwise, 0 is sent."
        "InvocationModelErrors": (4, 1),  # a 1 per error response of the model, else a 0
        "ModelDownloadingTime": (1, None),
        "ModelLoadingTime": (1, None),
        "ModelLoadingWaitTime": (1, None),  # the cold request waited for the load
        "ModelLatency": (3, None),
        "OverheadLatency": (3, None),
    }
    for metric, (samples, total) in expected.items():
        point = wait_until(lambda m=metric, n=samples: (p := stat(m)) and p["SampleCount"] == n and p, timeout=10)
        assert total is None or point["Sum"] == total, (metric, point)
    assert stat("ModelUnloadingTime") is None  # nothing was evicted
    assert wait_until(lambda: stat("LoadedModelCount", "/aws/sagemaker/Endpoints"), timeout=10)["Maximum"] == 1


def test_a_model_still_loading_answers_429_and_keeps_loading(ctx, clients):
    """The request gives up waiting (60 s on AWS, 10 ms here); the load goes on and later calls succeed."""
    name, prefix = make_endpoint(ctx, clients, environment={"MME_LOCAL_MODEL_WAIT_SECONDS": "0.01"})
    booster = train_booster()
    # a big (but well compressed) dot-file: unpacked, never loaded; it makes the cold load slow
    files = {"xgboost-model": bytes(booster.save_raw("ubj")), ".padding": bytes(120 * 2**20)}
    put_model(ctx, clients, prefix, "slow.tar.gz", body=model_tar(files=files))
    status, code, message, _ = error_of(lambda: invoke(clients, name, "1,2,3,4,5,6", "slow.tar.gz", ContentType="text/csv"))
    assert (status, code) == (429, "ModelNotReadyException") and "still loading" in message
    text = wait_until(lambda: _try(clients, name), timeout=60, interval=0.2)
    assert json.loads(text)
    assert loaded_models(name).loc["slow.tar.gz", "loads"] == 1


def _try(clients, name):
    try:
        return invoke(clients, name, "1,2,3,4,5,6", "slow.tar.gz", ContentType="text/csv")[0]
    except ClientError as error:
        assert error.response["Error"]["Code"] == "ModelNotReadyException"
        return None


def test_a_cached_model_keeps_serving_after_its_s3_object_is_deleted(ctx, clients, mme):
    """As on AWS: the endpoint serves what it has cached; only a model it must fetch again is gone."""
    name, prefix, booster = mme
    put_model(ctx, clients, prefix, "deleted.tar.gz", booster)
    before = invoke(clients, name, "1,2,3,4,5,6", "deleted.tar.gz", ContentType="text/csv")[0]
    clients.s3.delete_object(Bucket=ctx.bucket, Key=prefix + "deleted.tar.gz")
    assert invoke(clients, name, "1,2,3,4,5,6", "deleted.tar.gz", ContentType="text/csv")[0] == before
    status, code, message, _ = error_of(lambda: invoke(clients, name, "1,2", "never-there.tar.gz", ContentType="text/csv"))
    assert (status, code) == (400, "ValidationError") and "never-there.tar.gz" in message


def test_a_short_soak_from_several_processes_has_no_errors_and_flat_memory(ctx, clients, service):
    """The short version of benchmarks/bench_soak.py (which runs 60 s)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import httpload
    from soak import soak

    name, prefix = make_endpoint(ctx, clients)
    keys = [f"soak{i}.tar.gz" for i in range(5)]
    for key in keys:
        put_model(ctx, clients, prefix, key)
        invoke(clients, name, "1,2,3,4,5,6", key, ContentType="text/csv")
    url = f"{service.url}/endpoints/{name}/invocations"
    payloads = []
    for key in keys:
        headers = {"Content-Type": "text/csv", "X-Amzn-SageMaker-Target-Model": key}
        signed = signed_headers(service, "POST", url, b"1,2,3,4,5,6", headers)
        payloads.append(httpload.request_bytes(f"/endpoints/{name}/invocations", b"1,2,3,4,5,6", signed, service.port))
    figures = soak(service.port, service.pid, payloads, seconds=4, processes=2, connections=3)
    assert figures["errors"] == 0 and set(figures["statuses"]) == {200}, figures
    assert figures["requests"] > 100
    assert figures["rss_growth_mb_after_warmup"] < 30, figures
