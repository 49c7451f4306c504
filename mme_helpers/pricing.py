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
