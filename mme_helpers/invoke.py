"""Calling the endpoint: the example's boto3 helper (without its global-variable bug), cold and
warm timings, and errors shown the way a learner reads them (the endpoint's metrics: ``cloudwatch``)."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterable, Sequence

import pandas as pd
from botocore.exceptions import ClientError

# The timings the original example printed on AWS (ml.m5.xlarge endpoint, called from a notebook
# instance): first calls 1,469 ms and 1,145 ms, second calls 23 ms and 19 ms.
AWS_EXAMPLE_MS = {"cold": (1145, 1469), "warm": (19, 23)}


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


def compare_with_aws(cold_vs_warm: pd.DataFrame, mode: str) -> pd.DataFrame:
    """This run's median cold and warm calls beside what the original example measured on AWS."""
    low_cold, high_cold = AWS_EXAMPLE_MS["cold"]
    low_warm, high_warm = AWS_EXAMPLE_MS["warm"]
    return pd.DataFrame(
        {
            f"this run, {mode} mode (median ms)": [
                round(float(cold_vs_warm["cold_ms"].median()), 1),
                round(float(cold_vs_warm["warm_ms_median"].median()), 1),
            ],
            "original example on AWS (ms)": [f"{low_cold:,}–{high_cold:,}", f"{low_warm}–{high_warm}"],
        },
        index=["cold: first call of a model", "warm: model in memory"],
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
