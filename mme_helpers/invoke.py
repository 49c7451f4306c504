"""Calling the endpoint: the example's boto3 helper (without its global-variable bug), cold and
warm timings, the endpoint's CloudWatch metrics, and errors shown the way a learner reads them."""

from __future__ import annotations

import datetime as dt
import json
import statistics
import time
from collections.abc import Callable, Iterable, Sequence

import pandas as pd
from botocore.exceptions import ClientError

ENDPOINT_METRICS = (
    "Invocations",
    "ModelCacheHit",
    "ModelLatency",
    "OverheadLatency",
    "ModelDownloadingTime",
    "ModelLoadingTime",
    "ModelLoadingWaitTime",
    "ModelUnloadingTime",
    "Invocation4XXErrors",
    "InvocationModelErrors",
)


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


def endpoint_metrics(cloudwatch_client, endpoint_name: str, variant: str = "AllTraffic", minutes: int = 60) -> pd.DataFrame:
    """The MME metrics of the last ``minutes``, as CloudWatch has them (times in microseconds)."""
    end = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    start = end - dt.timedelta(minutes=minutes)
    dimensions = [{"Name": "EndpointName", "Value": endpoint_name}, {"Name": "VariantName", "Value": variant}]
    rows = []
    for name in ENDPOINT_METRICS:
        points = cloudwatch_client.get_metric_statistics(
            Namespace="AWS/SageMaker",
            MetricName=name,
            Dimensions=dimensions,
            StartTime=start,
            EndTime=end,
            Period=60 * minutes,
            Statistics=["SampleCount", "Sum", "Average", "Maximum"],
        )["Datapoints"]
        if not points:
            continue
        count = sum(p["SampleCount"] for p in points)
        total = sum(p["Sum"] for p in points)
        rows.append(
            {
                "metric": name,
                "samples": int(count),
                "sum": round(total, 1),
                "average": round(total / count, 3) if count else None,
                "maximum": round(max(p["Maximum"] for p in points), 1),
            }
        )
    return pd.DataFrame(rows, columns=["metric", "samples", "sum", "average", "maximum"]).set_index("metric")


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
