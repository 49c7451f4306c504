"""The endpoint's CloudWatch metrics: what each MME metric means and its unit, reading them (a
table, counts, time series), and waiting until CloudWatch has the requests a notebook sent (on AWS
datapoints arrive minutes after the calls)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable

import pandas as pd

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


def start_of_run(resolution_seconds: int = 1) -> dt.datetime:
    """A start time for reading one run's metrics: the next whole ``resolution_seconds`` (CloudWatch's
    finest: a second in local mode, a minute on AWS), once it has come. CloudWatch keeps datapoints at
    that resolution and rounds a query's start down to it, so requests sent after this time are counted
    from it, and none sent before."""
    now = dt.datetime.now(dt.UTC)
    elapsed = now.timestamp() % resolution_seconds
    start = now + dt.timedelta(seconds=resolution_seconds - elapsed)
    time.sleep((start - now).total_seconds())
    return start.replace(microsecond=0)


def one_period_since(since: dt.datetime) -> tuple[dt.datetime, int]:
    """An end time and one period (whole minutes, as AWS accepts) that cover everything from
    ``since`` to now in a single datapoint per metric."""
    end = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    return end, 60 * (int((end - since).total_seconds()) // 60 + 1)


def endpoint_metrics(
    cloudwatch_client, endpoint_name: str, variant: str = "AllTraffic", minutes: int = 60, since: dt.datetime | None = None
) -> pd.DataFrame:
    """The MME metrics of the last ``minutes`` (or from ``since``: one run's requests, not the
    endpoint's whole history), as CloudWatch has them, with their units. AWS rounds ``since`` down
    to its minute; local mode keeps it to the second."""
    if since is None:
        since = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1 - minutes)
    start = since
    end, period = one_period_since(since)
    rows = []
    for name, (_, unit, meaning) in ENDPOINT_METRICS.items():
        points = _metric_points(cloudwatch_client, endpoint_name, name, variant, start, end, period)
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
    """The part of :func:`endpoint_metrics` that does not depend on timing: how many samples (values
    published: CloudWatch's ``SampleCount``) each metric got, the sum of the count metrics (the sum of
    a time is a time), and the most models ``LoadedModelCount`` saw in memory (a gauge, sampled every
    interval)."""
    counted = metrics.loc[metrics.index.isin(COUNTED_METRICS)]
    frame = pd.DataFrame(
        {
            "samples": [str(int(n)) for n in counted["samples"]],
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
    since: dt.datetime | None = None,
) -> pd.DataFrame:
    """:func:`endpoint_metrics` (from ``since``, if given) once CloudWatch has a sample for each of
    ``requests_sent`` requests (``Invocation4XXErrors`` gets one per request: 1 if refused, else 0).

    AWS publishes endpoint metrics per minute, a few minutes after the requests; local mode within
    a second. While waiting longer than a few seconds, ``say`` tells what is awaited. The counts
    are returned once two reads ``poll_seconds`` apart agree.
    """
    started = time.monotonic()
    announced = 0.0
    previous = None
    while True:
        metrics = endpoint_metrics(cloudwatch_client, endpoint_name, variant, since=since)
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
        end, period = one_period_since(since)
        points = _metric_points(cloudwatch_client, endpoint_name, "ModelCacheHit", variant, since, end, period)
        seen = (int(sum(p["Sum"] for p in points)), int(sum(p["SampleCount"] for p in points)))
        if seen[1] >= requests_sent and seen == previous:
            return seen
        if time.monotonic() > deadline:
            raise TimeoutError(f"CloudWatch shows {seen[1]} of {requests_sent} requests after {timeout_seconds:.0f} s")
        previous = seen if seen[1] >= requests_sent else None
        time.sleep(poll_seconds)
