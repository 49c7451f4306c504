"""A fleet of models behind one endpoint: a thousand towns' price models, trained, checked and put
under one multi-model prefix, then a skewed request stream replayed against the endpoint.

Two ways to train, one result (``<town>.tar.gz`` under the fleet's prefix):

- ``training jobs``: one SageMaker training job per town, created with boto3 from a thread pool
  (the SDK's ``Estimator.fit`` does several calls per job; a thousand of them would be the slow
  part). Local mode runs the jobs in parallel on this machine.
- ``this machine``: XGBoost here, then one upload per model. On AWS a thousand training jobs would
  each pay an instance's start-up and minimum billing, and queue behind the account's limit on
  concurrent jobs; a model this small trains in milliseconds where the notebook runs.
"""

from __future__ import annotations

import concurrent.futures
import io
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from . import data
from .naming import RunNames
from .sagemaker_hosting import pack_model, portable_model

PLACES = ("training jobs", "this machine")
UPLOAD_THREADS = 16


# Progress bars on stdout (no stderr box in a notebook), ending in a line without times or rates, so that a
# stored notebook shows "<what>: 1000/1000" whatever the machine's speed.
def progress() -> dict:
    """tqdm's options for such a bar (``sys.stdout`` as it is when the bar starts)."""
    return {"file": sys.stdout, "bar_format": "{desc}: {n_fmt}/{total_fmt} {unit}s", "mininterval": 1.0}


def town_names(count: int) -> list[str]:
    """``Town0000`` ... : names a thousand models can have (the price level comes from the name)."""
    if not isinstance(count, int) or not 1 <= count <= 10_000:
        raise ValueError(f"NUM_MODELS must be a whole number from 1 to 10,000, got {count!r}")
    return [f"Town{i:04d}" for i in range(count)]


def training_place(choice: str, mode: str) -> str:
    """``auto`` trains as training jobs in local mode and on this machine on AWS (see above)."""
    if choice == "auto":
        return "training jobs" if mode == "local" else "this machine"
    if choice not in PLACES:
        raise ValueError(f"TRAIN_ON must be 'auto' or one of {PLACES}, got {choice!r}")
    return choice


def _in_threads(work: Callable, items: Sequence, desc: str, unit: str, threads: int = UPLOAD_THREADS) -> list:
    """``work(item)`` for every item on a thread pool, with a progress bar; results in item order."""
    with (
        concurrent.futures.ThreadPoolExecutor(threads) as pool,
        tqdm(total=len(items), desc=desc, unit=unit, **progress()) as bar,
    ):
        futures = [pool.submit(work, item) for item in items]
        for _ in concurrent.futures.as_completed(futures):
            bar.update(1)
        return [future.result() for future in futures]


# training as SageMaker training jobs ----------------------------------------------------------------------


def job_names(names: RunNames, towns: Sequence[str], stamp: str) -> dict[str, str]:
    """One training job name per town, unique to this training (job names can never be reused)."""
    return {town: f"{names.run}-fleet-{stamp}-{town.lower()}"[:63] for town in towns}


def training_job_request(
    job_name: str, data_uri: str, output_uri: str, image: str, role: str, hyperparameters: dict, instance_type: str
) -> dict:
    """``CreateTrainingJob`` for one town, as ``Estimator.fit`` sends it for the built-in XGBoost."""
    channels = [
        {
            "ChannelName": name,
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": f"{data_uri}/{folder}",
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
            "ContentType": "text/csv",
        }
        for name, folder in (("train", "train"), ("validation", "val"))
    ]
    return {
        "TrainingJobName": job_name,
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "RoleArn": role,
        "InputDataConfig": channels,
        "OutputDataConfig": {"S3OutputPath": output_uri},
        "ResourceConfig": {"InstanceCount": 1, "InstanceType": instance_type, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "HyperParameters": {key: str(value) for key, value in hyperparameters.items()},
    }


def upload_training_data(s3_client, bucket: str, prefix: str, towns: Sequence[str], data_dir: Path) -> None:
    """Each town's train and validation CSV to ``<prefix>/<town>/{train,val}/``."""

    def upload(town: str) -> None:
        for channel in ("train", "val"):
            path = Path(data_dir) / town / channel / f"{town}_{channel}.csv"
            s3_client.put_object(Bucket=bucket, Key=f"{prefix}/{town}/{channel}/{path.name}", Body=path.read_bytes())

    _in_threads(upload, list(towns), "uploading data", "town")


def wait_for_jobs(sagemaker_client, jobs: dict[str, str], name_contains: str, poll_seconds: float) -> dict[str, str]:
    """Every job's final status, found by listing (one call a page, not one a job), with a bar."""
    wanted = set(jobs.values())
    final: dict[str, str] = {}
    with tqdm(total=len(wanted), desc="training jobs finished", unit="job", **progress()) as bar:
        while len(final) < len(wanted):
            for page in sagemaker_client.get_paginator("list_training_jobs").paginate(NameContains=name_contains):
                for job in page["TrainingJobSummaries"]:
                    name, status = job["TrainingJobName"], job["TrainingJobStatus"]
                    if name in wanted and name not in final and status in ("Completed", "Failed", "Stopped"):
                        final[name] = status
                        bar.update(1)
            if len(final) < len(wanted):
                time.sleep(poll_seconds)
    return final


def train_as_jobs(
    ctx, names: RunNames, towns, data_dir, hyperparameters, image, fleet_prefix, instance_type
) -> pd.DataFrame:
    sagemaker_client, s3_client = ctx.client("sagemaker"), ctx.client("s3")
    data_prefix = f"{names.s3_prefix}/fleet_data"
    upload_training_data(s3_client, ctx.bucket, data_prefix, towns, data_dir)
    stamp = time.strftime("%m%d%H%M%S")
    jobs = job_names(names, towns, stamp)
    output_uri = names.s3_uri(ctx.bucket, f"{names.s3_prefix}/fleet_jobs")

    def create(town: str) -> None:
        data_uri = names.s3_uri(ctx.bucket, f"{data_prefix}/{town}")
        request = training_job_request(jobs[town], data_uri, output_uri, image, ctx.role, hyperparameters, instance_type)
        sagemaker_client.create_training_job(**request)

    _in_threads(create, list(towns), "creating jobs (each starts training at once)", "job", threads=8)
    statuses = wait_for_jobs(sagemaker_client, jobs, f"{names.run}-fleet-{stamp}", ctx.poll_seconds)
    failed = {town: statuses[job] for town, job in jobs.items() if statuses[job] != "Completed"}
    if failed:
        raise RuntimeError(f"{len(failed)} training job(s) did not complete, e.g. {sorted(failed.items())[:3]}")

    def collect(town: str) -> dict:
        job = sagemaker_client.describe_training_job(TrainingJobName=jobs[town])
        source = job["ModelArtifacts"]["S3ModelArtifacts"][len("s3://") :].split("/", 1)
        key = f"{fleet_prefix}{town}.tar.gz"
        s3_client.copy_object(Bucket=ctx.bucket, Key=key, CopySource={"Bucket": source[0], "Key": source[1]})
        rmse = {m["MetricName"]: m["Value"] for m in job.get("FinalMetricDataList", [])}.get("validation:rmse")
        seconds = (job["TrainingEndTime"] - job["TrainingStartTime"]).total_seconds()
        return {"town": town, "job": jobs[town], "validation_rmse": rmse, "job_seconds": seconds}

    return pd.DataFrame(_in_threads(collect, list(towns), "collecting artifacts", "model")).set_index("town")


# training on this machine -------------------------------------------------------------------------------------


def train_here(town: str, data_dir: Path, hyperparameters: dict) -> tuple[bytes, float]:
    """One town's model trained here with the built-in algorithm's defaults; the artifact (written
    for the container's XGBoost) and its validation RMSE."""
    import xgboost as xgb

    params = {key: value for key, value in hyperparameters.items() if key != "num_round"}
    params.setdefault("nthread", 1)
    train, val = (data.read_split(data_dir, town, channel).to_numpy() for channel in ("train", "val"))
    dtrain = xgb.DMatrix(train[:, 1:], label=train[:, 0])
    dval = xgb.DMatrix(val[:, 1:], label=val[:, 0])
    history: dict = {}
    booster = xgb.train(
        params,
        dtrain,
        int(hyperparameters["num_round"]),
        evals=[(dval, "validation")],
        evals_result=history,
        verbose_eval=False,
    )
    return pack_model(portable_model(booster)), float(history["validation"]["rmse"][-1])


def train_on_this_machine(ctx, towns, data_dir, hyperparameters, fleet_prefix) -> pd.DataFrame:
    s3_client = ctx.client("s3")

    def train_and_upload(town: str) -> dict:
        started = time.perf_counter()
        artifact, rmse = train_here(town, data_dir, hyperparameters)
        seconds = time.perf_counter() - started
        s3_client.put_object(Bucket=ctx.bucket, Key=f"{fleet_prefix}{town}.tar.gz", Body=io.BytesIO(artifact))
        return {"town": town, "job": "", "validation_rmse": rmse, "job_seconds": seconds}

    return pd.DataFrame(_in_threads(train_and_upload, list(towns), "training here", "model", threads=4)).set_index("town")


def train_fleet(ctx, names: RunNames, towns, data_dir, hyperparameters, image, fleet_prefix, place, instance_type):
    """Train every town's model where ``place`` says; each ends as ``<fleet_prefix><town>.tar.gz``.
    Returns one row per town and, in ``attrs``, the wall-clock time."""
    started = time.perf_counter()
    if place == "training jobs":
        table = train_as_jobs(ctx, names, towns, data_dir, hyperparameters, image, fleet_prefix, instance_type)
    else:
        table = train_on_this_machine(ctx, towns, data_dir, hyperparameters, fleet_prefix)
    table.attrs["seconds"] = time.perf_counter() - started
    table.attrs["place"] = place
    return table


def sample_artifacts(s3_client, bucket: str, fleet_prefix: str, towns: Sequence[str], count: int, seed: int) -> dict:
    """``count`` artifacts picked at random (seeded), downloaded: the sample a check looks at."""
    picked = sorted(np.random.default_rng(seed).choice(list(towns), size=min(count, len(towns)), replace=False))
    return {town: s3_client.get_object(Bucket=bucket, Key=f"{fleet_prefix}{town}.tar.gz")["Body"].read() for town in picked}


# the request stream ------------------------------------------------------------------------------------------------


def zipf_stream(targets: Sequence[str], length: int, exponent: float, seed: int) -> list[str]:
    """``length`` requests over ``targets``, the k-th most popular asked ``1/k**exponent`` as often
    as the first (popularity in a seeded random order: not the order the models were named in)."""
    if exponent <= 0:
        raise ValueError(f"ZIPF_EXPONENT must be positive, got {exponent}")
    rng = np.random.default_rng(seed)
    ranked = rng.permutation(np.asarray(targets, dtype=object))
    weights = 1.0 / np.arange(1, len(ranked) + 1) ** exponent
    return list(ranked[rng.choice(len(ranked), size=length, p=weights / weights.sum())])


def stream_shape(stream: Sequence[str], models: int) -> pd.DataFrame:
    """How skewed the stream is: the share of requests that the most popular models receive."""
    counts = pd.Series(stream).value_counts()
    rows = []
    for share in (0.01, 0.1, 0.5):
        top = max(1, int(models * share))
        rows.append(
            {"most popular models": f"top {share:.0%} ({top:,})", "share of requests": counts.iloc[:top].sum() / len(stream)}
        )
    rows.append({"most popular models": f"ever requested ({len(counts):,} of {models:,})", "share of requests": 1.0})
    return pd.DataFrame(rows).set_index("most popular models")


def replay(runtime_client, endpoint_name: str, stream: Sequence[str], body: str, desc: str = "replaying") -> pd.DataFrame:
    """Send the stream in order, one request at a time (the order is what LRU depends on); one
    record per request: target, latency and the price answered."""
    records = []
    first = time.perf_counter()
    for number, target in enumerate(tqdm(stream, desc=desc, unit="request", **progress()), 1):
        started = time.perf_counter()
        response = runtime_client.invoke_endpoint(
            EndpointName=endpoint_name, TargetModel=target, ContentType="text/csv", Body=body
        )
        price = float(response["Body"].read().decode().strip().strip("[]").split(",")[0])
        finished = time.perf_counter()
        records.append((number, target, (finished - started) * 1000, started - first, price))
    return pd.DataFrame(records, columns=["request", "target_model", "latency_ms", "at_s", "price"]).set_index("request")


def latency_by_outcome(records: pd.DataFrame, simulated: pd.DataFrame) -> pd.DataFrame:
    """Latency percentiles per outcome the LRU simulation gives each request."""
    outcome = simulated["lru says"].where(simulated["lru says"] == "hit", "miss from " + simulated["load from"])
    joined = records.assign(outcome=outcome.to_numpy())
    table = joined.groupby("outcome")["latency_ms"].describe(percentiles=[0.5, 0.9, 0.99])
    table = table.rename(columns={"count": "requests", "50%": "p50 ms", "90%": "p90 ms", "99%": "p99 ms"})
    return table[["requests", "p50 ms", "p90 ms", "p99 ms"]].astype({"requests": int}).round(2)


def per_model_check(agreement: pd.DataFrame) -> str:
    """What the per-model check (``eviction.check_against_endpoint``) shows, in words true in each mode:
    local mode shows each model's loads and evictions, AWS shows none."""
    shown = agreement["endpoint: loads"].notna()
    if not shown.any():
        return (
            f"AWS shows no per-model state: the {len(agreement):,} models' loads and evictions cannot be checked one "
            "by one; the hit ratio (ModelCacheHit) and LoadedModelCount are what AWS shows"
        )
    same = int(agreement.loc[shown, "same"].sum())
    return (
        f"{same:,} of {len(agreement):,} models: the local endpoint loaded and evicted them exactly as the LRU simulation "
        "says (local mode follows this project's model of AWS; this does not show that AWS would)"
    )


# the replay's summary, kept for 09_sizing_the_endpoint ----------------------------------------------------------


def replay_summary(records: pd.DataFrame, simulated: pd.DataFrame, hits: int, seen: int) -> dict:
    """One replay in one row: the simulation's and the endpoint's hit ratios, latency percentiles."""
    quantiles = records["latency_ms"].quantile([0.5, 0.9, 0.99])
    return {
        "LRU hit ratio": float((simulated["lru says"] == "hit").mean()),
        "endpoint hit ratio": hits / seen if seen else float("nan"),
        "p50 ms": quantiles[0.5],
        "p90 ms": quantiles[0.9],
        "p99 ms": quantiles[0.99],
    }


def replays_file(names: RunNames, data_root: str | Path = "data") -> Path:
    from .naming import project_path

    return project_path(names.data_dir(data_root)) / "fleet" / "replays.csv"


def save_replay(names: RunNames, label: str, summary: dict, data_root: str | Path = "data") -> Path:
    """Add (or replace) one replay's row in the run's ``replays.csv``, where 09 finds 08's replay."""
    path = replays_file(names, data_root)
    table = pd.read_csv(path, index_col=0) if path.exists() else pd.DataFrame()
    table = pd.concat([table.drop(index=label, errors="ignore"), pd.DataFrame([summary], index=[label])])
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path)
    return path


def load_replays(names: RunNames, data_root: str | Path = "data") -> pd.DataFrame:
    path = replays_file(names, data_root)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run 08_thousand_models first, with RUN_NAME = {names.run!r}")
    return pd.read_csv(path, index_col=0)


def restart_empty(sagemaker_client, names: RunNames, instance_type: str, poll_seconds: float) -> str:
    """A re-run of 08 finds its endpoint already there (and perhaps moved by 09): move it to fresh instances of
    ``instance_type``, one, whose caches start empty as the simulation's does. ``UpdateEndpoint`` always starts
    new instances; the configuration is one the endpoint is not on. Returns the configuration's name."""
    from .endpoint import wait_for_endpoint

    current = sagemaker_client.describe_endpoint(EndpointName=names.fleet_endpoint)["EndpointConfigName"]
    first = names.fleet_config(instance_type, 1)
    config = first if current != first else f"{first}-b"
    listed = sagemaker_client.list_endpoint_configs(NameContains=config)["EndpointConfigs"]
    if not any(c["EndpointConfigName"] == config for c in listed):
        variant = {
            "VariantName": "AllTraffic",
            "ModelName": names.fleet_model,
            "InitialInstanceCount": 1,
            "InstanceType": instance_type,
        }
        sagemaker_client.create_endpoint_config(EndpointConfigName=config, ProductionVariants=[variant])
    sagemaker_client.update_endpoint(EndpointName=names.fleet_endpoint, EndpointConfigName=config)
    wait_for_endpoint(sagemaker_client, names.fleet_endpoint, poll_seconds)
    return config


def cloudwatch_periods(at_s, started, period: int) -> np.ndarray:
    """The CloudWatch period each request falls in, labelled as ``cloudwatch.metric_series`` labels its rows
    (seconds from ``started`` to the period's start, rounded down to whole periods), so that a simulation's
    per-period figures line up with the endpoint's. ``at_s``: seconds from ``started``. AWS rounds a recent
    StartTime down to the whole minute (GetMetricStatistics), so periods of a minute or more start on whole
    minutes; local mode's periods of a second start at ``started`` itself."""
    offset = started.timestamp() % 60 if period >= 60 else 0.0
    starts = (np.asarray(at_s, dtype=float) + offset) // period * period - offset
    return starts // period * period
