"""Training bookkeeping for the notebooks: launching at most N jobs at a time, waiting with a
progress bar, and the table of results. The SageMaker SDK calls themselves stay in the notebook."""

from __future__ import annotations

import contextlib
import io
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd
from tqdm import tqdm

from .naming import RunNames

TERMINAL = ("Completed", "Failed", "Stopped")


class TrainingFailed(RuntimeError):
    """One or more training jobs did not complete."""


def clear_prefix(s3_client, bucket: str, prefix: str) -> int:
    """Delete every object under ``prefix`` (old data of an earlier run); returns how many."""
    deleted = 0
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            s3_client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
            deleted += len(keys)
    return deleted


def run_training_jobs(
    locations: Iterable[str],
    launch: Callable[[str], Any],
    parallel: int,
    poll_seconds: float,
    timeout_s: float = 3 * 3600,
) -> dict[str, Any]:
    """Call ``launch(location)`` (which returns an Estimator after ``fit(wait=False)``) for every
    location, never more than ``parallel`` jobs in progress; wait for all with a progress bar."""
    if parallel < 1:
        raise ValueError(f"PARALLEL_TRAINING_JOBS must be at least 1, got {parallel}")
    waiting = list(locations)
    running: dict[str, Any] = {}
    done: dict[str, Any] = {}
    deadline = time.monotonic() + timeout_s
    # stdout: a notebook shows stderr as a pink box, and the suite keeps the bar's final line
    with tqdm(total=len(waiting), desc="training jobs", unit="job", file=sys.stdout) as bar:
        while waiting or running:
            while waiting and len(running) < parallel:
                location = waiting.pop(0)
                running[location] = launch(location)
            for location, estimator in list(running.items()):
                status = estimator.latest_training_job.describe()["TrainingJobStatus"]
                if status in TERMINAL:
                    done[location] = running.pop(location)
                    bar.update(1)
                    bar.set_postfix_str(f"{location}: {status}")
            if running:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"training jobs still running after {timeout_s:.0f} s: {sorted(running)}")
                time.sleep(poll_seconds)
    return done


def describe_jobs(sagemaker_client, job_names: dict[str, str]) -> pd.DataFrame:
    """One row a job: status, duration, validation RMSE and where its model went."""
    rows = []
    for location, name in job_names.items():
        job = sagemaker_client.describe_training_job(TrainingJobName=name)
        metrics = {m["MetricName"]: m["Value"] for m in job.get("FinalMetricDataList", [])}
        start, end = job.get("TrainingStartTime"), job.get("TrainingEndTime")
        rows.append(
            {
                "location": location,
                "job": name,
                "status": job["TrainingJobStatus"],
                "seconds": round((end - start).total_seconds(), 1) if start and end else None,
                "train_rmse": round(metrics["train:rmse"], 1) if "train:rmse" in metrics else None,
                "validation_rmse": round(metrics["validation:rmse"], 1) if "validation:rmse" in metrics else None,
                "failure": job.get("FailureReason", ""),
                "artifact": job.get("ModelArtifacts", {}).get("S3ModelArtifacts", ""),  # none until Completed
            }
        )
    return pd.DataFrame(rows).set_index("location")


def check_completed(table: pd.DataFrame) -> None:
    failed = table[table["status"] != "Completed"]
    if len(failed):
        details = "; ".join(f"{loc}: {row.status} ({row.failure})" for loc, row in failed.iterrows())
        raise TrainingFailed(f"{len(failed)} training job(s) did not complete: {details}")


def latest_completed_jobs(sagemaker_client, names: RunNames, locations: Iterable[str], version: str = "") -> dict[str, str]:
    """The newest completed training job of each location in this run, found by name."""
    found = {}
    for location in locations:
        pattern = names.job_pattern(location, version)
        candidates = []
        paginator = sagemaker_client.get_paginator("list_training_jobs")
        for page in paginator.paginate(
            NameContains=names.job_base(location, version),
            StatusEquals="Completed",
            SortBy="CreationTime",
            SortOrder="Descending",
        ):
            candidates += [j for j in page["TrainingJobSummaries"] if pattern.match(j["TrainingJobName"])]
        if not candidates:
            raise LookupError(
                f"no completed training job for {location} in run '{names.run}' "
                f"(names like {names.job_base(location, version)}-<timestamp>): run 02_train_models first"
            )
        found[location] = max(candidates, key=lambda j: j["CreationTime"])["TrainingJobName"]
    return found


def attach_estimator(job_name: str, sagemaker_session):
    """``Estimator.attach`` without the job's status history, which it prints (02 showed it)."""
    from sagemaker.estimator import Estimator

    with contextlib.redirect_stdout(io.StringIO()):
        return Estimator.attach(job_name, sagemaker_session=sagemaker_session)


TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"


def training_log(logs_client, job_name: str) -> list[str]:
    """Every line a training job wrote to CloudWatch Logs (what ``estimator.logs()`` prints)."""
    lines: list[str] = []
    streams = logs_client.describe_log_streams(logGroupName=TRAINING_LOG_GROUP, logStreamNamePrefix=f"{job_name}/")
    for stream in streams.get("logStreams", []):
        token = None
        while True:
            kwargs = {"nextToken": token} if token else {}
            page = logs_client.get_log_events(
                logGroupName=TRAINING_LOG_GROUP, logStreamName=stream["logStreamName"], startFromHead=True, **kwargs
            )
            lines += [event["message"] for event in page["events"]]
            if not page["events"] or page.get("nextForwardToken") == token:
                break
            token = page.get("nextForwardToken")
    return lines


def excerpt(lines: list[str], head: int = 8, tail: int = 4) -> str:
    """The first and last lines of a long log, with how many were left out between them."""
    if len(lines) <= head + tail + 1:
        return "\n".join(lines)
    left_out = len(lines) - head - tail
    return "\n".join([*lines[:head], f"   ... {left_out} more lines ...", *lines[-tail:]])
