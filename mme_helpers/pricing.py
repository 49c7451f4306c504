"""What endpoints cost: on-demand prices of real-time inference instances and the comparison a
team makes before choosing a multi-model endpoint.

Prices are SageMaker's on-demand real-time inference prices in us-east-1 at the time of writing
(USD per instance-hour); they change, and other regions differ: check the SageMaker pricing page.
"""

from __future__ import annotations

import pandas as pd

HOURLY_USD = {
    "ml.t2.medium": 0.056,
    "ml.m5.large": 0.115,
    "ml.m5.xlarge": 0.23,
    "ml.m5.2xlarge": 0.461,
    "ml.m5.4xlarge": 0.922,
    "ml.m5.12xlarge": 2.765,
}
HOURS_PER_MONTH = 730


def hourly(instance_type: str, count: int = 1) -> float:
    try:
        return HOURLY_USD[instance_type] * count
    except KeyError:
        raise KeyError(f"no price for {instance_type}; known: {', '.join(HOURLY_USD)}") from None


def mme_against_endpoint_per_model(options: list[tuple[str, str, int]], models: int, single_model_type: str) -> pd.DataFrame:
    """Monthly cost of each MME option (label, instance type, count) against one endpoint per model
    on ``single_model_type``, the smallest instance a real-time endpoint can have."""
    rows = [
        {
            "setup": label,
            "instances": count,
            "instance type": instance_type,
            "USD per hour": round(hourly(instance_type, count), 3),
            "USD per month": round(hourly(instance_type, count) * HOURS_PER_MONTH),
        }
        for label, instance_type, count in options
    ]
    rows.append(
        {
            "setup": f"one endpoint per model ({models:,} endpoints)",
            "instances": models,
            "instance type": single_model_type,
            "USD per hour": round(hourly(single_model_type, models), 2),
            "USD per month": round(hourly(single_model_type, models) * HOURS_PER_MONTH),
        }
    )
    frame = pd.DataFrame(rows).set_index("setup")
    per_model = frame.iloc[-1]["USD per month"]
    frame["times cheaper than one endpoint per model"] = (per_model / frame["USD per month"]).round(0).astype(int)
    return frame


# AWS mode's time and cost, estimated before anything is billed -----------------------------------------------

# A request's time on AWS, from the original example's timings (``invoke.AWS_EXAMPLE_MS``: cold 1,145-1,469 ms,
# warm 19-23 ms, from a notebook in the endpoint's region); a miss from disk is counted as cold too (the
# model server starts a worker for it either way). An endpoint's creation and an ``UpdateEndpoint`` start new
# instances: "several minutes" in AWS's words; 8 and 10 minutes are this project's planning figures.
CREATE_MINUTES = 8
UPDATE_MINUTES = 10
METRICS_MINUTES = 3  # after a replay, until CloudWatch has its last ModelCacheHit datapoints (1-minute periods)


def replay_minutes(hits: int, misses: int) -> tuple[float, float]:
    """How long one request at a time takes on AWS, low and high, for this many hits and misses."""
    from .invoke import AWS_EXAMPLE_MS

    (cold_low, cold_high), (warm_low, warm_high) = AWS_EXAMPLE_MS["cold"], AWS_EXAMPLE_MS["warm"]
    return (
        (misses * cold_low + hits * warm_low) / 60_000,
        (misses * cold_high + hits * warm_high) / 60_000,
    )


def aws_schedule(replays: list[tuple[str, int, int, int]]) -> pd.DataFrame:
    """The AWS run of 08 and 09 step by step: the endpoint created on the first configuration, then an
    ``UpdateEndpoint`` before each other one, and a replay on each. ``replays``: (instance type, count,
    hits, misses) as the LRU simulation predicts them. During an update the old instances keep serving
    and billing beside the new ones. Minutes are the high estimate; USD at on-demand prices."""
    rows = []
    previous = None
    for number, (instance_type, count, hits, misses) in enumerate(replays):
        label = f"{count} x {instance_type}"
        billed = hourly(instance_type, count) + (hourly(*previous) if previous else 0)
        step = "create the endpoint" if number == 0 else "UpdateEndpoint"
        minutes = CREATE_MINUTES if number == 0 else UPDATE_MINUTES
        rows.append({"step": f"{step} to {label}", "minutes": minutes, "USD": billed * minutes / 60})
        minutes = replay_minutes(hits, misses)[1] + METRICS_MINUTES
        rows.append(
            {
                "step": f"replay {hits + misses:,} requests on {label} ({misses:,} misses), then CloudWatch",
                "minutes": minutes,
                "USD": hourly(instance_type, count) * minutes / 60,
            }
        )
        previous = (instance_type, count)
    frame = pd.DataFrame(rows).set_index("step")
    frame.loc["total"] = frame.sum()
    frame["USD"] = frame["USD"].round(2)
    frame["minutes"] = frame["minutes"].round(0).astype(int)
    return frame
