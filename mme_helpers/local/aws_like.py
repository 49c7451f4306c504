"""The service's AWS-like profile: where a learner could see local mode differ from AWS, behave as AWS.

Off by default (local mode shows what AWS cannot: per-model state, metrics within a second, a small
memory budget set per model). On for the AWS rehearsal (``mme_helpers.local.rehearsal``), read once
when the service starts from ``MME_LOCAL_BEHAVE_AS_AWS`` (``python -m mme_helpers.local start
--behave-as-aws`` sets it):

- no per-model state: ``/_local/endpoints/...`` is an unknown SageMaker path, as it is on AWS
  (``/_local/health`` stays: it is the service's liveness check, which only ``start``/``status`` ask);
- CloudWatch: endpoint metrics aggregated per minute and published once the minute has ended plus a
  delay (AWS: "1-minute frequency", available minutes later), and a query's ``StartTime`` rounded
  down to its minute, as ``GetMetricStatistics`` documents;
- capacity per instance type: the ``MME_LOCAL_*`` container variables are ignored, as AWS's container
  ignores them; an instance holds what its memory holds with the model-server worker charge.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

VARIABLE = "MME_LOCAL_BEHAVE_AS_AWS"
DELAY_VARIABLE = "MME_LOCAL_METRICS_DELAY_SECONDS"
AWS_PERIOD_S = 60  # SageMaker endpoint metrics: "available at a 1-minute frequency" (AWS developer guide)
DEFAULT_DELAY_S = 60.0  # after its minute ends; AWS documents no figure ("a few minutes" is common)


@dataclass(frozen=True)
class Profile:
    """How the service shows itself: ``aws_like`` or local mode's own view."""

    aws_like: bool = False
    metrics_period_s: int = 1
    metrics_delay_s: float = 0.0

    @property
    def name(self) -> str:
        return "aws-like" if self.aws_like else "local"


def from_environment(environ: dict[str, str] | None = None) -> Profile:
    environ = os.environ if environ is None else environ
    if environ.get(VARIABLE, "").lower() not in ("1", "true", "yes"):
        return Profile()
    delay = float(environ.get(DELAY_VARIABLE, DEFAULT_DELAY_S))
    return Profile(aws_like=True, metrics_period_s=AWS_PERIOD_S, metrics_delay_s=delay)


def round_start_times_down() -> None:
    """moto's CloudWatch, asked for statistics, rounds ``StartTime`` down to the whole minute as AWS does
    ("Start time less than 15 days ago - Round down to the nearest whole minute", GetMetricStatistics
    API reference). Without it a minute's datapoint, stamped at the minute's start, is missed by a
    query that starts within that minute."""
    from moto.cloudwatch.models import CloudWatchBackend

    original = CloudWatchBackend.get_metric_statistics
    if getattr(original, "rounds_start_down", False):
        return

    def get_metric_statistics(self, namespace, metric_name, start_time: dt.datetime, *args, **kwargs):
        return original(self, namespace, metric_name, start_time.replace(second=0, microsecond=0), *args, **kwargs)

    get_metric_statistics.rounds_start_down = True
    CloudWatchBackend.get_metric_statistics = get_metric_statistics
