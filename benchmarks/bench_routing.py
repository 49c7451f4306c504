"""Routing on two instances: notebook 08's stream (1,000 models, Zipf s = 1.1, 4,000 requests, seed 7)
on 2 x ml.m5.large, each holding as many models as 08's capacity table says, routed by a hash of the
model's name (local mode's routing before) and as AWS documents it (``sagemaker_hosting.instance_index``).

    .venv/bin/python benchmarks/bench_routing.py             # the simulations, a few seconds
    .venv/bin/python benchmarks/bench_routing.py --endpoint  # and one replay on a local endpoint (~1 min)
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import boto3
import pandas as pd

from mme_helpers import data, eviction, fleet
from mme_helpers.container_xgboost import model_file
from mme_helpers.local import config, lifecycle
from mme_helpers.local.signed_http import signed_get
from mme_helpers.sagemaker_hosting import hash_index

# notebook 08's (08_thousand_models) parameters
NUM_MODELS, HOUSES_PER_MODEL, SEED, REQUESTS, ZIPF_EXPONENT = 1000, 500, 7, 4000, 1.1
HYPERPARAMETERS = {
    "max_depth": 5, "eta": 0.2, "gamma": 4, "min_child_weight": 6, "subsample": 0.7,
    "objective": "reg:squarederror", "num_round": 50,
}  # fmt: skip
INSTANCE_TYPE, INSTANCES = "ml.m5.large", 2
IMAGE = "246618743249.dkr.ecr.us-west-2.amazonaws.com/sagemaker-xgboost:1.7-1"
SAMPLE_TOWNS = 5  # models trained as 08 trains them, for their size


def fleet_artifacts(towns: list[str], folder: Path) -> list[bytes]:
    data.generate_dataset(towns, HOUSES_PER_MODEL, SEED, folder)
    return [fleet.train_here(town, folder, HYPERPARAMETERS)[0] for town in towns]


def hash_routed(stream: list[str], capacity: int, instances: int) -> pd.DataFrame:
    """The old routing: each model on the instance its name hashes to, one LRU cache each."""
    routed = [hash_index(target, instances) for target in stream]
    parts = []
    for number in range(instances):
        positions = [i for i, k in enumerate(routed, 1) if k == number]
        part = eviction.simulate_lru([stream[i - 1] for i in positions], capacity)
        parts.append(part.set_index(pd.Index(positions, name="request")).assign(instance=number))
    return pd.concat(parts).sort_index()


def summary(simulated: pd.DataFrame) -> dict:
    served = Counter(simulated["instance"])
    return {
        "hit ratio": f"{eviction.hit_ratio(simulated):.2%}",
        "misses from S3": int((simulated["load from"] == "S3").sum()),
        "misses from disk": int((simulated["load from"] == "disk").sum()),
        "requests per instance": "/".join(str(served[k]) for k in range(INSTANCES)),
    }


def replay_on_endpoint(stream: list[str], artifact: bytes) -> tuple[float, pd.DataFrame, list[int]]:
    """The stream on a local endpoint of 2 x ml.m5.large (the instance type's own budget: 80 % of
    8 GiB, 68 MB of model-server worker per model), every model the same artifact; returns the hit
    ratio from the endpoint's per-model counts, its per-model state and the serving instance per request."""
    with tempfile.TemporaryDirectory() as tmp:
        info, _ = lifecycle.start(Path(tmp) / "service")
        try:
            session = boto3.session.Session(info.access_key_id, info.secret_access_key, region_name=info.region)
            sm, s3 = (session.client(name, endpoint_url=info.url) for name in ("sagemaker", "s3"))
            runtime = session.client("sagemaker-runtime", endpoint_url=info.url)
            bucket, name, prefix = config.default_bucket(info.region), "routing", "routing/models/"
            for target in sorted(set(stream)):
                s3.put_object(Bucket=bucket, Key=prefix + target, Body=io.BytesIO(artifact))
            container = {"Image": IMAGE, "Mode": "MultiModel", "ModelDataUrl": f"s3://{bucket}/{prefix}"}
            sm.create_model(ModelName=name, ExecutionRoleArn=config.ROLE_ARN, PrimaryContainer=container)
            variant = {"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": INSTANCES}
            variant["InstanceType"] = INSTANCE_TYPE
            sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant])
            sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
            sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig={"Delay": 0.2})
            served = []
            for target in stream:
                response = runtime.invoke_endpoint(
                    EndpointName=name, TargetModel=target, ContentType="text/csv", Body="1,2,3,4,5,6"
                )
                served.append(int(response["ResponseMetadata"]["HTTPHeaders"]["x-mme-local-instance"]))
            status, state = signed_get(
                info.url, f"/_local/endpoints/{name}/models", info.access_key_id, info.secret_access_key, info.region
            )
            assert status == 200, state
        finally:
            lifecycle.stop(Path(tmp) / "service")
    models = pd.DataFrame(state["models"]).set_index("target")
    return models["hits"].sum() / len(stream), models, served


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", action="store_true", help="also replay the stream on a local endpoint")
    args = parser.parse_args()
    towns = fleet.town_names(NUM_MODELS)
    stream = fleet.zipf_stream([f"{town}.tar.gz" for town in towns], REQUESTS, ZIPF_EXPONENT, SEED)
    with tempfile.TemporaryDirectory() as tmp:
        artifacts = fleet_artifacts(towns[:SAMPLE_TOWNS], Path(tmp))
    sizes = [len(model_file(artifact)) for artifact in artifacts]
    table = eviction.capacity_by_instance_type([INSTANCE_TYPE], sizes, image_version=IMAGE.rsplit(":", 1)[1])
    capacity, exact = int(table.loc[INSTANCE_TYPE, "capacity (models)"]), bool(table.attrs["same for every size"])
    print(f"08's stream: {REQUESTS:,} requests over {len(set(stream)):,} of {NUM_MODELS:,} models "
          f"(Zipf s = {ZIPF_EXPONENT}, seed {SEED}); {INSTANCES} x {INSTANCE_TYPE}, {capacity} models each "
          f"(model files {min(sizes):,}-{max(sizes):,} bytes; exact: {exact})")  # fmt: skip
    started = time.perf_counter()
    old, new = hash_routed(stream, capacity, INSTANCES), eviction.simulate_instances(stream, capacity, INSTANCES)
    one = eviction.simulate_lru(stream, capacity * INSTANCES)
    rows = {
        "hash of the name (before)": summary(old),
        "as AWS documents (now)": summary(new),
        f"one cache of {capacity * INSTANCES} (for scale)": summary(one.assign(instance=0)),
    }
    moved = sum(a != b for a, b in zip(old["instance"], new["instance"], strict=True))
    print(pd.DataFrame(rows).T.to_string())
    print(f"simulations: {time.perf_counter() - started:.1f} s; requests served by another instance than the hash's: "
          f"{moved:,}")  # fmt: skip
    if args.endpoint:
        started = time.perf_counter()
        ratio, models, served = replay_on_endpoint(stream, artifacts[0])
        same = served == new["instance"].tolist()
        agree = all(
            eviction.check_against_endpoint(new[new["instance"] == k], models[models["instance"] == k])["same"].all()
            for k in range(INSTANCES)
        )
        print(f"endpoint replay ({time.perf_counter() - started:.0f} s): hit ratio {ratio:.2%}; every request on the "
              f"simulation's instance: {same}; every model's loads and evictions as simulated: {agree}")  # fmt: skip
        if not (same and agree):
            sys.exit(1)


if __name__ == "__main__":
    main()
