"""Clean-up by name: find everything a run made, delete it in an order that works, and check
that nothing is left. Safe to run twice, and after a run that stopped halfway."""

from __future__ import annotations

import re
import time

import pandas as pd
from botocore.exceptions import ClientError

from .naming import RunNames


def _missing(error: ClientError) -> bool:
    message = error.response["Error"].get("Message", "")
    return error.response["Error"]["Code"] in ("ValidationException", "ResourceNotFound") and (
        "Could not find" in message or "not found" in message.lower()
    )


def _exists(describe, **name) -> bool:
    try:
        describe(**name)
        return True
    except ClientError as error:
        if _missing(error):
            return False
        raise


def inventory(sagemaker_client, s3_client, bucket: str, names: RunNames, locations=(), versions=("", "v2")) -> pd.DataFrame:
    """Everything of this run, by exact name: endpoint, endpoint config, model, S3 objects, jobs."""
    rows = []
    for kind, describe, argument, name in (
        ("endpoint", sagemaker_client.describe_endpoint, "EndpointName", names.endpoint),
        ("endpoint config", sagemaker_client.describe_endpoint_config, "EndpointConfigName", names.endpoint_config),
        ("model", sagemaker_client.describe_model, "ModelName", names.model),
        ("endpoint", sagemaker_client.describe_endpoint, "EndpointName", names.fleet_endpoint),
        ("model", sagemaker_client.describe_model, "ModelName", names.fleet_model),
        ("endpoint", sagemaker_client.describe_endpoint, "EndpointName", names.v3_endpoint),
        ("endpoint config", sagemaker_client.describe_endpoint_config, "EndpointConfigName", names.v3_endpoint_config),
        ("model", sagemaker_client.describe_model, "ModelName", names.v3_model),
    ):
        if _exists(describe, **{argument: name}):
            rows.append({"kind": kind, "name": name})
    rows += [{"kind": "endpoint config", "name": name} for name in fleet_configs(sagemaker_client, names)]
    patterns = [names.job_pattern(location, version) for location in locations for version in versions]
    patterns += [names.v3_job_pattern(location) for location in locations]  # 10_sdk_v3's ModelTrainer
    fleet_jobs = re.compile("^" + re.escape(names.run) + r"-fleet-\d{10}-")
    fleet_count = 0
    paginator = sagemaker_client.get_paginator("list_training_jobs")
    for page in paginator.paginate(NameContains=f"{names.run}-"):
        for job in page["TrainingJobSummaries"]:
            if any(p.match(job["TrainingJobName"]) for p in patterns):
                rows.append({"kind": "training job", "name": job["TrainingJobName"]})
            fleet_count += bool(fleet_jobs.match(job["TrainingJobName"]))
    if fleet_count:
        rows.append({"kind": "training jobs", "name": f"{fleet_count} of the fleet ({names.run}-fleet-<time>-<town>)"})
    count, size = 0, 0
    try:
        for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=names.s3_prefix + "/"):
            for item in page.get("Contents", []):
                count += 1
                size += item["Size"]
    except s3_client.exceptions.NoSuchBucket:
        pass
    if count:
        rows.append(
            {"kind": "S3 objects", "name": f"s3://{bucket}/{names.s3_prefix}/ ({count} objects, {size / 1024:.0f} KB)"}
        )
    frame = pd.DataFrame(rows, columns=["kind", "name"])
    frame.attrs["training_jobs"] = int((frame["kind"] == "training job").sum()) + fleet_count
    return frame


def fleet_configs(sagemaker_client, names: RunNames) -> list[str]:
    """The fleet endpoint's configurations: the one ``deploy`` made and one per size tried."""
    found = []
    for page in sagemaker_client.get_paginator("list_endpoint_configs").paginate(NameContains=names.fleet_endpoint):
        found += [
            c["EndpointConfigName"]
            for c in page["EndpointConfigs"]
            if c["EndpointConfigName"] == names.fleet_endpoint
            or c["EndpointConfigName"].startswith(names.fleet_endpoint + "-")
        ]
    return sorted(found)


def delete_endpoint_resources(
    sagemaker_client, endpoint_name: str, config_name: str, model_name: str, poll_seconds: float = 1.0
) -> list[str]:
    """Endpoint, then its config, then the model; a missing one is fine. Returns what was deleted."""
    deleted = []
    try:
        sagemaker_client.delete_endpoint(EndpointName=endpoint_name)
        deleted.append(f"endpoint {endpoint_name}")
        _wait_gone(sagemaker_client, endpoint_name, poll_seconds)
    except ClientError as error:
        if not _missing(error):
            raise
    for call, argument, label, name in (
        (sagemaker_client.delete_endpoint_config, "EndpointConfigName", "endpoint config", config_name),
        (sagemaker_client.delete_model, "ModelName", "model", model_name),
    ):
        try:
            call(**{argument: name})
            deleted.append(f"{label} {name}")
        except ClientError as error:
            if not _missing(error):
                raise
    return deleted


def _wait_gone(sagemaker_client, endpoint_name: str, poll_seconds: float, max_minutes: float = 20) -> None:
    deadline = time.monotonic() + max_minutes * 60
    while time.monotonic() < deadline:
        try:
            sagemaker_client.describe_endpoint(EndpointName=endpoint_name)
        except ClientError as error:
            if _missing(error):
                return
            raise
        time.sleep(poll_seconds)
    raise TimeoutError(f"endpoint {endpoint_name} still exists after {max_minutes} minutes")


def delete_run(sagemaker_client, s3_client, bucket: str, names: RunNames, poll_seconds: float = 1.0) -> pd.DataFrame:
    """Delete everything of the run that costs money or storage; return what was done."""
    actions = delete_endpoint_resources(sagemaker_client, names.endpoint, names.endpoint_config, names.model, poll_seconds)
    actions += delete_endpoint_resources(
        sagemaker_client, names.v3_endpoint, names.v3_endpoint_config, names.v3_model, poll_seconds
    )
    configs = fleet_configs(sagemaker_client, names)
    actions += delete_endpoint_resources(
        sagemaker_client,
        names.fleet_endpoint,
        configs[0] if configs else names.fleet_endpoint,
        names.fleet_model,
        poll_seconds,
    )
    for config in configs[1:]:
        sagemaker_client.delete_endpoint_config(EndpointConfigName=config)
        actions.append(f"endpoint config {config}")
    deleted_objects = 0
    try:
        paginator = s3_client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=names.s3_prefix + "/"):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                s3_client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
                deleted_objects += len(keys)
    except s3_client.exceptions.NoSuchBucket:
        pass
    if deleted_objects:
        actions.append(f"S3 objects under s3://{bucket}/{names.s3_prefix}/ ({deleted_objects})")
    return pd.DataFrame({"deleted": actions}, columns=["deleted"])


def leftovers(sagemaker_client, s3_client, bucket: str, names: RunNames) -> pd.DataFrame:
    """What is still there after the clean-up; training jobs are not looked for (they cannot be deleted)."""
    found = inventory(sagemaker_client, s3_client, bucket, names)
    return found[~found["kind"].isin(["training job", "training jobs"])].reset_index(drop=True)


def what_remains(names: RunNames, jobs_kept: int, data_root: str, mode: str) -> pd.DataFrame:
    """What the clean-up leaves on purpose, where it is, and whether it costs anything."""
    from .naming import project_path

    relative = names.data_dir(data_root)
    folder = project_path(relative)
    files = [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []
    size = sum(p.stat().st_size for p in files)
    rows = [
        {
            "what": f"{jobs_kept} training job record(s)",
            "where": f"SageMaker > Training jobs, names starting {names.run}-",
            "cost": "nothing",
            "to remove": "cannot be deleted: SageMaker has no call for it",
        },
        {
            "what": "the generated CSV data",
            "where": f"{relative}/ in the project ({len(files)} files, {size / 1024:,.0f} KB)",
            "cost": "disk space on this machine",
            "to remove": f"rm -r {relative}",
        },
    ]
    if mode == "aws":
        rows += [
            {
                "what": "training and endpoint logs",
                "where": f"CloudWatch Logs: /aws/sagemaker/TrainingJobs, /aws/sagemaker/Endpoints/{names.endpoint}",
                "cost": "cents per GB stored",
                "to remove": "delete the log streams or set a retention period",
            },
            {
                "what": "endpoint metrics",
                "where": "CloudWatch metrics, AWS/SageMaker and /aws/sagemaker/Endpoints",
                "cost": "nothing",
                "to remove": "they expire on their own (15 months)",
            },
        ]
    else:
        rows.append(
            {
                "what": "the local service and its state (S3, jobs, logs, metrics)",
                "where": "a process on 127.0.0.1 and the folder .mme_local/",
                "cost": "a little memory while it runs",
                "to remove": "python -m mme_helpers.local stop (its state stays for the next start; reset forgets it)",
            }
        )
    return pd.DataFrame(rows).set_index("what")

