"""Training in local mode, the notebooks' ways: the seed's 4 models as 02 trains them (SDK
upload_data + Estimator.fit(wait=False) per city, until every job has its artifact), and 100 and
1,000 models as 06 trains them (fleet.train_fleet: data uploaded and jobs created with boto3 from
thread pools, artifacts copied under the endpoint's prefix). Data: 1,000 houses a model.

    .venv/bin/python benchmarks/bench_training.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path


def run(locations: list[str], workdir: Path, parallel: int) -> tuple[float, int]:
    from mme_helpers import data
    from mme_helpers.naming import RunNames
    from mme_helpers.session import setup
    from mme_helpers.training import describe_jobs, run_training_jobs

    ctx = setup("local")  # before importing sagemaker
    import sagemaker
    from sagemaker import image_uris

    names = RunNames(f"bench{len(locations)}")
    data_dir = workdir / names.run
    data.generate_dataset(locations, 1000, 7, data_dir)
    image = image_uris.retrieve(framework="xgboost", region=ctx.region, version="1.7-1")
    hyperparameters = {
        "max_depth": 5,
        "eta": 0.2,
        "gamma": 4,
        "min_child_weight": 6,
        "subsample": 0.7,
        "objective": "reg:squarederror",
        "num_round": 50,
    }

    def launch(location):
        inputs = ctx.sagemaker_session.upload_data(path=str(data_dir / location), key_prefix=names.data_prefix(location))
        est = sagemaker.estimator.Estimator(
            image_uri=image,
            role=ctx.role,
            instance_count=1,
            instance_type="ml.m5.xlarge",
            output_path=names.s3_uri(ctx.bucket, names.artifacts_prefix(location)),
            base_job_name=names.job_base(location),
            sagemaker_session=ctx.sagemaker_session,
        )
        est.set_hyperparameters(**hyperparameters)
        est.fit(
            {
                "train": sagemaker.inputs.TrainingInput(inputs + "/train", content_type="text/csv"),
                "validation": sagemaker.inputs.TrainingInput(inputs + "/val", content_type="text/csv"),
            },
            wait=False,
        )
        return est

    started = time.perf_counter()
    estimators = run_training_jobs(locations, launch, parallel, poll_seconds=0.05)
    elapsed = time.perf_counter() - started
    table = describe_jobs(ctx.client("sagemaker"), {k: e.latest_training_job.job_name for k, e in estimators.items()})
    completed = int((table["status"] == "Completed").sum())
    s3 = ctx.client("s3")
    for artifact in table["artifact"]:
        bucket, key = artifact[5:].split("/", 1)
        s3.head_object(Bucket=bucket, Key=key)  # every artifact exists
    return elapsed, completed


def run_fleet(count: int, workdir: Path) -> tuple[float, int]:
    from mme_helpers import data, fleet
    from mme_helpers.naming import RunNames
    from mme_helpers.session import setup

    ctx = setup("local")
    from sagemaker import image_uris

    names = RunNames(f"fleet{count}")
    towns = fleet.town_names(count)
    data_dir = workdir / names.run
    data.generate_dataset(towns, 1000, 7, data_dir)
    image = image_uris.retrieve(framework="xgboost", region=ctx.region, version="1.7-1")
    hyperparameters = {
        "max_depth": 5, "eta": 0.2, "gamma": 4, "min_child_weight": 6, "subsample": 0.7,
        "objective": "reg:squarederror", "num_round": 50,
    }  # fmt: skip
    table = fleet.train_fleet(
        ctx, names, towns, data_dir, hyperparameters, image, names.fleet_prefix, "training jobs", "ml.m5.xlarge"
    )
    listed = ctx.client("s3").list_objects_v2(Bucket=ctx.bucket, Prefix=names.fleet_prefix, MaxKeys=1000)
    return table.attrs["seconds"], listed["KeyCount"] if count <= 1000 else count


def main() -> None:
    from mme_helpers import local

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MME_LOCAL_HOME"] = str(Path(tmp) / "service")
        try:
            local.start()  # not timed: the service is up before a notebook trains
            seed = ["NewYork_NY", "LosAngeles_CA", "Chicago_IL", "Houston_TX"]
            four, ok4 = run(seed, Path(tmp), parallel=4)
            hundred, ok100 = run_fleet(100, Path(tmp))
            thousand, ok1000 = run_fleet(1000, Path(tmp))
        finally:
            local.stop()
    print(f"Local training, {os.cpu_count()} cores (upload + training jobs + artifacts)")
    print(f"  seed's 4 models, SDK as in 02:  {four:.2f} s ({ok4}/4 completed)")
    print(
        f"  100 models, as in 06:           {hundred:.2f} s ({ok100}/100 artifacts, {hundred / 100 * 1000:.0f} ms per model)"
    )
    print(f"  1,000 models, as in 06:         {thousand:.2f} s ({ok1000}/1000 artifacts, {thousand:.0f} ms per model)")


if __name__ == "__main__":
    sys.exit(main())
