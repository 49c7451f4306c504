"""Endpoint bookkeeping for the notebooks: waiting, what the endpoint can serve, what it has
loaded, and ``add_model_if_absent``: the SDK's ``add_model`` behind a guard, under a name of its own so
that a learner never mistakes one for the other."""

from __future__ import annotations

import io
import os
import tarfile
from urllib.parse import quote

import pandas as pd

from .sagemaker_hosting import split_s3_uri


class ModelKeyExists(FileExistsError):
    """The relative key already holds a model: overwriting it would not reach a cached copy."""


def wait_for_endpoint(sagemaker_client, endpoint_name: str, poll_seconds: float, max_minutes: float = 30) -> dict:
    """boto3's ``endpoint_in_service`` waiter (checks at once, then every ``poll_seconds``)."""
    waiter = sagemaker_client.get_waiter("endpoint_in_service")
    attempts = max(1, int(max_minutes * 60 / poll_seconds))
    waiter.wait(EndpointName=endpoint_name, WaiterConfig={"Delay": poll_seconds, "MaxAttempts": attempts})
    return sagemaker_client.describe_endpoint(EndpointName=endpoint_name)


def object_exists(s3_client, bucket: str, key: str) -> bool:
    try:
        s3_client.head_object(Bucket=bucket, Key=key)
        return True
    except s3_client.exceptions.ClientError as error:
        if error.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return False
        raise


def add_model_if_absent(mme, model_data_source: str, model_data_path: str, overwrite: bool = False) -> str:
    """``MultiDataModel.add_model`` that refuses to overwrite an existing key unless asked.

    An endpoint that already loaded (or cached on disk) the old artifact keeps serving it after
    an overwrite; a new key is the only way to be sure the new model is the one invoked.
    """
    bucket, prefix = split_s3_uri(mme.model_data_prefix)
    key = prefix + model_data_path
    s3 = mme.sagemaker_session.boto_session.client("s3")
    if not overwrite and object_exists(s3, bucket, key):
        raise ModelKeyExists(
            f"s3://{bucket}/{key} already exists. An endpoint that has loaded it would keep serving the old "
            "model after an overwrite: add the new model under a new name (e.g. ..._v2.tar.gz), "
            "or pass overwrite=True if you know no endpoint has it cached."
        )
    return mme.add_model(model_data_source=model_data_source, model_data_path=model_data_path)


def model_catalog(s3_client, model_data_prefix: str) -> pd.DataFrame:
    """What the endpoint can serve: S3 prefix + relative key = model."""
    bucket, prefix = split_s3_uri(model_data_prefix)
    rows = []
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            rows.append(
                {
                    "target_model (relative key)": item["Key"][len(prefix) :],
                    "S3 object": f"s3://{bucket}/{item['Key']}",
                    "size_kb": round(item["Size"] / 1024, 1),
                }
            )
    return pd.DataFrame(rows, columns=["target_model (relative key)", "S3 object", "size_kb"])


def unpacked_model_bytes(s3_client, s3_uri: str) -> int:
    """The size of a ``model.tar.gz`` once unpacked: about what the model takes in memory."""
    bucket, key = split_s3_uri(s3_uri)
    body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
        return sum(member.size for member in archive.getmembers() if member.isfile())


def loaded_models(endpoint_name: str) -> pd.DataFrame:
    """The models the endpoint has in memory or on disk, with hits, misses and load times per
    model. Only local mode can show this (AWS publishes endpoint-wide metrics only): in AWS mode
    the table is empty and ``attrs["summary"]`` says why."""
    columns = [
        "target", "instance", "state", "hits", "misses", "loads", "evictions",
        "download_ms", "load_ms", "size_bytes", "memory_bytes",
    ]  # fmt: skip
    url = os.environ.get("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME")
    if not url:
        frame = pd.DataFrame(columns=columns).set_index("target")
        frame.attrs["summary"] = "AWS shows no per-model state; see the endpoint's CloudWatch metrics"
        return frame
    from .local import signed_get

    status, state = signed_get(
        url,
        f"/_local/endpoints/{quote(endpoint_name)}/models",
        os.environ["AWS_ACCESS_KEY_ID"],
        os.environ["AWS_SECRET_ACCESS_KEY"],
        os.environ.get("AWS_DEFAULT_REGION", "us-west-2"),
    )
    if status != 200:
        raise LookupError(f"the local service has no state for endpoint {endpoint_name}: {state}")
    frame = pd.DataFrame(state.get("models", []), columns=columns).sort_values("target").set_index("target")
    frame.attrs.update({k: v for k, v in state.items() if k != "models"})
    instances = state.get("instances", 1)
    per_instance = f" on each of its {instances} instances" if instances > 1 else ""
    frame.attrs["summary"] = (
        f"{len(state.get('loaded_models', []))} models in memory, using {state['memory_used_bytes'] / 1024:,.0f} KB "
        f"of the endpoint's {_size(state['memory_budget_bytes'])} budget{per_instance}"
    )
    return frame


def _size(nbytes: int) -> str:
    return f"{nbytes / 2**30:,.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 1e6:,.2f} MB"  # decimal, as the tables
