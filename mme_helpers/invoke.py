"""Calling the endpoint: the example's boto3 helper (without its global-variable bug), cold and
warm timings, and errors shown the way a learner reads them (the endpoint's metrics: ``cloudwatch``)."""

from __future__ import annotations

import json
import secrets
import statistics
import time
from collections.abc import Callable, Iterable, Sequence

import pandas as pd
from botocore.exceptions import ClientError

# The timings the original example printed on AWS (ml.m5.xlarge endpoint, called from a notebook
# instance): first calls 1,469 ms and 1,145 ms, second calls 23 ms and 19 ms.
AWS_EXAMPLE_MS = {"cold": (1145, 1469), "warm": (19, 23)}


class EndpointNotFound(LookupError):
    """The endpoint a notebook invokes does not exist (or is not in service): say which notebook makes it."""


def require_endpoint(sagemaker_client, endpoint_name: str, run_name: str) -> dict:
    """``describe_endpoint``, or an error that names the notebook to run: after ``11_cleanup`` (or
    before ``03_deploy_endpoint``) SageMaker's own answer is only "Could not find endpoint"."""
    rerun = f"run 03_deploy_endpoint.ipynb with RUN_NAME={run_name!r} again (11_cleanup deletes it)"
    try:
        described = sagemaker_client.describe_endpoint(EndpointName=endpoint_name)
    except ClientError as error:
        if "Could not find endpoint" not in error.response["Error"].get("Message", ""):
            raise
        raise EndpointNotFound(f"endpoint {endpoint_name} does not exist: {rerun}") from None
    status = described["EndpointStatus"]
    if status != "InService":
        raise EndpointNotFound(f"endpoint {endpoint_name} is {status}, not InService: wait for it, or {rerun}")
    return described


def run_tag() -> str:
    """A tag unique to one run of a notebook, for model keys the endpoint has never seen: a re-run
    (after a kernel restart, against the same endpoint) gets keys as new as the first run's."""
    return time.strftime("%Y%m%d%H%M%S") + secrets.token_hex(2)


class RequestCounter:
    """Counts the InvokeEndpoint requests a set of boto3 clients sent, answered or refused, so that
    a notebook knows how many CloudWatch should eventually show."""

    def __init__(self, *runtime_clients):
        self.sent = 0
        for client in runtime_clients:
            client.meta.events.register("after-call.sagemaker-runtime.InvokeEndpoint", self._count)

    def _count(self, **_) -> None:
        self.sent += 1


def csv_row(features: Sequence[float]) -> str:
    """One house as the CSV line the XGBoost container reads (no label, no header)."""
    return ",".join(map(str, features)) + "\n"


def predict_one_house_value(
    runtime_client, endpoint_name: str, features: Sequence[float], model_name: str
) -> tuple[float, float]:
    """The example's boto3 call path: CSV in, no Accept, so the container answers a JSON list.

    Returns the predicted price and the round trip in milliseconds.
    """
    started = time.perf_counter()
    response = runtime_client.invoke_endpoint(
        EndpointName=endpoint_name, ContentType="text/csv", TargetModel=model_name, Body=csv_row(features)
    )
    predicted_value = json.loads(response["Body"].read())[0]
    return predicted_value, (time.perf_counter() - started) * 1000


def time_invocations(
    predict: Callable[[Sequence[float], str], float],
    targets: Iterable[str],
    features: Sequence[float],
    warm_calls: int = 20,
) -> pd.DataFrame:
    """First (cold) call and the median of ``warm_calls`` warm calls per target model.

    ``predict(features, target)`` returns the price; the same house is priced by every model.
    """
    rows = []
    for target in targets:
        started = time.perf_counter()
        price = predict(features, target)
        cold_ms = (time.perf_counter() - started) * 1000
        warm = []
        for _ in range(warm_calls):
            started = time.perf_counter()
            predict(features, target)
            warm.append((time.perf_counter() - started) * 1000)
        rows.append(
            {
                "target_model": target,
                "price": round(float(price), 2),
                "cold_ms": round(cold_ms, 1),
                "warm_ms_median": round(statistics.median(warm), 2),
            }
        )
    return pd.DataFrame(rows).set_index("target_model")


def aws_cold_to_warm() -> tuple[float, float]:
    """The range of cold-to-warm ratios of the original example's AWS timings (each cold call over
    each warm call): about 50 to 77."""
    low_cold, high_cold = AWS_EXAMPLE_MS["cold"]
    low_warm, high_warm = AWS_EXAMPLE_MS["warm"]
    return low_cold / high_warm, high_cold / low_warm


def compare_with_aws(cold_vs_warm: pd.DataFrame, mode: str) -> pd.DataFrame:
    """This run's median cold and warm calls, and their ratio, beside what the original example
    measured on AWS."""
    low_cold, high_cold = AWS_EXAMPLE_MS["cold"]
    low_warm, high_warm = AWS_EXAMPLE_MS["warm"]
    low_ratio, high_ratio = aws_cold_to_warm()
    cold = float(cold_vs_warm["cold_ms"].median())
    warm = float(cold_vs_warm["warm_ms_median"].median())
    return pd.DataFrame(
        {
            f"this run, {mode} mode (median)": [f"{cold:,.1f} ms", f"{warm:,.1f} ms", f"{cold / warm:,.0f} x"],
            "original example on AWS": [
                f"{low_cold:,}–{high_cold:,} ms",
                f"{low_warm}–{high_warm} ms",
                f"{low_ratio:,.0f}–{high_ratio:,.0f} x",
            ],
        },
        index=["cold: first call of a model", "warm: model in memory", "cold / warm"],
    )


def describe_error(call: Callable[[], object]) -> dict:
    """Run a call that should fail and return what a learner needs to read: the HTTP status,
    the error code (botocore's exception class) and the message."""
    try:
        call()
    except ClientError as error:
        response = error.response
        return {
            "http_status": response["ResponseMetadata"]["HTTPStatusCode"],
            "error_code": response["Error"]["Code"],
            "exception": type(error).__name__,
            "message": response["Error"]["Message"],
        }
    raise AssertionError("the call succeeded, but an error was expected")
