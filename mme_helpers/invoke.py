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

# metric: (namespace, unit, what it tells a learner)
ENDPOINT_METRICS = {
    "Invocations": ("AWS/SageMaker", "count", "requests the endpoint answered"),
    "ModelCacheHit": ("AWS/SageMaker", "0 or 1", "1 when the model was already in memory; its average is the hit ratio"),
    "ModelLatency": ("AWS/SageMaker", "µs", "time inside the container, a cold load included"),
    "OverheadLatency": ("AWS/SageMaker", "µs", "time SageMaker adds around the container"),
    "ModelDownloadingTime": ("AWS/SageMaker", "µs", "one sample per download from S3 (a cold start)"),
    "ModelLoadingTime": ("AWS/SageMaker", "µs", "one sample per load into memory (from S3 or from the disk cache)"),
    "ModelLoadingWaitTime": ("AWS/SageMaker", "µs", "how long requests waited for a model to be loaded"),
    "ModelUnloadingTime": ("AWS/SageMaker", "µs", "one sample per eviction from memory"),
    "LoadedModelCount": ("/aws/sagemaker/Endpoints", "models", "models in memory (per instance)"),
    "Invocation4XXErrors": ("AWS/SageMaker", "count", "requests refused as the caller's mistake"),
    "InvocationModelErrors": ("AWS/SageMaker", "count", "requests the container failed (ModelError)"),
}
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


def _metric_points(cloudwatch_client, endpoint_name, name, variant, start, end, period):
    namespace = ENDPOINT_METRICS[name][0]
    dimensions = [{"Name": "EndpointName", "Value": endpoint_name}, {"Name": "VariantName", "Value": variant}]
    return cloudwatch_client.get_metric_statistics(
        Namespace=namespace,
        MetricName=name,
        Dimensions=dimensions,
        StartTime=start,
        EndTime=end,
        Period=period,
        Statistics=["SampleCount", "Sum", "Average", "Maximum"],
    )["Datapoints"]


def endpoint_metrics(cloudwatch_client, endpoint_name: str, variant: str = "AllTraffic", minutes: int = 60) -> pd.DataFrame:
    """The MME metrics of the last ``minutes``, as CloudWatch has them, with their units."""
    end = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    start = end - dt.timedelta(minutes=minutes)
    rows = []
    for name, (_, unit, meaning) in ENDPOINT_METRICS.items():
        points = _metric_points(cloudwatch_client, endpoint_name, name, variant, start, end, 60 * minutes)
        if not points:
            continue
        count = sum(p["SampleCount"] for p in points)
        total = sum(p["Sum"] for p in points)
        rows.append(
            {
                "metric": name,
                "unit": unit,
                "samples": int(count),
                "sum": round(total, 1),
                "average": round(total / count, 3) if count else None,
                "maximum": round(max(p["Maximum"] for p in points), 1),
                "what it tells": meaning,
            }
        )
    columns = ["metric", "unit", "samples", "sum", "average", "maximum", "what it tells"]
    return pd.DataFrame(rows, columns=columns).set_index("metric")


COUNTED_METRICS = (
    "Invocations",
    "ModelCacheHit",
    "ModelDownloadingTime",
    "ModelLoadingTime",
    "ModelUnloadingTime",
    "Invocation4XXErrors",
    "InvocationModelErrors",
)


def metric_counts(metrics: pd.DataFrame) -> pd.DataFrame:
    """The part of :func:`endpoint_metrics` that does not depend on timing: how many datapoints
    each metric got, the sum of the count metrics (the sum of a time is a time), and the most
    models ``LoadedModelCount`` saw in memory (a gauge, sampled every interval)."""
    counted = metrics.loc[metrics.index.isin(COUNTED_METRICS)]
    frame = pd.DataFrame(
        {
            "datapoints": [str(int(n)) for n in counted["samples"]],
            "sum": [
                f"{total:,.0f}" if unit != "µs" else "(a time)"
                for unit, total in zip(counted["unit"], counted["sum"], strict=True)
            ],
            "what it tells": counted["what it tells"],
        },
        index=counted.index,
    )
    if "LoadedModelCount" in metrics.index:
        frame.loc["LoadedModelCount"] = [
            "(a gauge)",
            f"at most {metrics.loc['LoadedModelCount', 'maximum']:,.0f}",
            ENDPOINT_METRICS["LoadedModelCount"][2],
        ]
    return frame


def wait_for_metrics(
    cloudwatch_client,
    endpoint_name: str,
    requests_sent: int,
    timeout_seconds: float = 900,
    poll_seconds: float = 1.0,
    variant: str = "AllTraffic",
    say: Callable[[str], None] = print,
) -> pd.DataFrame:
    """:func:`endpoint_metrics` once CloudWatch has a datapoint for each of ``requests_sent``
    requests (``Invocation4XXErrors`` gets one per request: 1 if refused, else 0).

    AWS publishes endpoint metrics per minute, a few minutes after the requests; local mode within
    a second. While waiting longer than a few seconds, ``say`` tells what is awaited. The counts
    are returned once two reads ``poll_seconds`` apart agree.
    """
    started = time.monotonic()
    announced = 0.0
    previous = None
    while True:
        metrics = endpoint_metrics(cloudwatch_client, endpoint_name, variant)
        seen = int(metrics["samples"].get("Invocation4XXErrors", 0))
        if seen >= requests_sent:
            # a datapoint batch may still be arriving (CloudWatch applies it metric by metric):
            # the answer is the first one that a later read confirms
            per_request = metrics.drop(index="LoadedModelCount", errors="ignore")  # a gauge: it never settles
            if previous is not None and previous.equals(per_request):
                return metrics
            previous = per_request
            time.sleep(poll_seconds)
            continue
        waited = time.monotonic() - started
        if waited > timeout_seconds:
            say(f"gave up after {waited:.0f} s: CloudWatch shows {seen} of {requests_sent} requests so far")
            return metrics
        if waited >= 5 and waited - announced >= 60:
            announced = waited
            say(
                f"waiting for CloudWatch: {seen} of {requests_sent} requests visible after {waited:.0f} s "
                "(AWS publishes endpoint metrics per minute, a few minutes late)"
            )
        time.sleep(poll_seconds)


def metric_series(
    cloudwatch_client,
    endpoint_name: str,
    names: Iterable[str],
    period: int,
    since: dt.datetime,
    variant: str = "AllTraffic",
) -> pd.DataFrame:
    """Metrics over time since ``since``, one row per ``period`` seconds: the sample count of
    event metrics (one sample per load, per eviction), the maximum of ``LoadedModelCount`` and
    the hit ratio for ``ModelCacheHit``."""
    end = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=period)
    columns = {}
    for name in names:
        points = _metric_points(cloudwatch_client, endpoint_name, name, variant, since, end, period)
        gauge = name == "LoadedModelCount"
        # the bucket each datapoint falls in, counted in seconds from ``since``
        buckets = [(p["Timestamp"] - since).total_seconds() // period * period for p in points]

        def per_bucket(statistic: str, points=points, buckets=buckets) -> pd.Series:
            return pd.Series([p[statistic] for p in points], index=buckets, dtype=float).groupby(level=0)

        if gauge:
            columns[name] = per_bucket("Maximum").max()
        elif name == "ModelCacheHit":  # 0 or 1 a request: the share of hits in the bucket
            columns[name] = per_bucket("Sum").sum() / per_bucket("SampleCount").sum()
        else:
            columns[name] = per_bucket("SampleCount").sum()
    frame = pd.DataFrame(columns).sort_index()
    frame.index.name = "seconds"
    return frame


def wait_for_cache_hits(
    cloudwatch_client,
    endpoint_name: str,
    since: dt.datetime,
    requests_sent: int,
    poll_seconds: float = 1.0,
    timeout_seconds: float = 900,
    variant: str = "AllTraffic",
) -> tuple[int, int]:
    """``ModelCacheHit`` since ``since``: (hits, requests), once CloudWatch has all of
    ``requests_sent`` and two reads agree (AWS: minutes; local mode: about a second)."""
    deadline = time.monotonic() + timeout_seconds
    previous = None
    while True:
        end = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
        period = 60 * (int((end - since).total_seconds()) // 60 + 1)
        points = _metric_points(cloudwatch_client, endpoint_name, "ModelCacheHit", variant, since, end, period)
        seen = (int(sum(p["Sum"] for p in points)), int(sum(p["SampleCount"] for p in points)))
        if seen[1] >= requests_sent and seen == previous:
            return seen
        if time.monotonic() > deadline:
            raise TimeoutError(f"CloudWatch shows {seen[1]} of {requests_sent} requests after {timeout_seconds:.0f} s")
        previous = seen if seen[1] >= requests_sent else None
        time.sleep(poll_seconds)


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
