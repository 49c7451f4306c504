"""Eviction made visible (mme_helpers.eviction and the metrics helpers of notebook 04): the LRU
simulation itself, then the local endpoint checked against it under a skewed request stream."""

import datetime as dt
import io
import tarfile

import numpy as np
import pytest
from conftest import model_tar, train_booster
from test_endpoint import invoke, make_endpoint, put_model

from mme_helpers import eviction
from mme_helpers.cloudwatch import metric_counts, metric_series, wait_for_metrics
from mme_helpers.endpoint import loaded_models
from mme_helpers.invoke import RequestCounter


def test_lru_simulation_evicts_the_least_recently_used():
    simulated = eviction.simulate_lru(list("abacdb"), capacity=2)
    assert simulated["lru says"].tolist() == ["miss", "miss", "hit", "miss", "miss", "miss"]
    assert simulated["evicts"].tolist() == ["", "", "", "b", "a", "c"]
    assert simulated["load from"].tolist() == ["S3", "S3", "", "S3", "S3", "disk"]  # b was seen: its copy is on disk
    assert simulated["loaded after"].max() == 2
    counts = eviction.per_model_counts(simulated)
    assert counts.loc["b"].tolist() == [2, 1] and counts.loc["d"].tolist() == [1, 0]


def test_lru_simulation_starts_from_what_is_loaded():
    simulated = eviction.simulate_lru(["c", "a"], capacity=2, loaded=["a", "b"])
    assert simulated["evicts"].tolist() == ["a", "b"] and simulated["load from"].tolist() == ["S3", "disk"]


def test_capacity_needs_a_positive_size_and_room_for_one():
    assert eviction.capacity_in_models(10, 3) == 3
    with pytest.raises(ValueError):
        eviction.capacity_in_models(10, 0)
    with pytest.raises(ValueError):
        eviction.simulate_lru(["a"], capacity=0)


# Figures written out by hand, not taken from the code under test: an ml.m5.xlarge has 16 GiB, of
# which 80 % is for models: 0.8 x 16 x 2^30 = 13,743,895,347 bytes (an ml.m5.large: 8 GiB ->
# 6,871,947,673). A model-server worker is 68 MB (68,000,000 bytes, benchmarks/bench_worker_memory.py)
# and a loaded model 1.4 x its file.
M5_XLARGE_FOR_MODELS = 13_743_895_347
M5_LARGE_FOR_MODELS = 6_871_947_673
WORKER = 68_000_000


def test_models_that_fit_on_an_instance():
    table = eviction.seed_models_per_instance("ml.m5.xlarge", 84_000, image_version="1.7-1")
    by_file, with_worker = table["models that fit"].tolist()
    assert by_file == 163_617  # 13,743,895,347 // 84,000
    assert with_worker == 201  # 13,743,895,347 // (84,000 x 1.4 + 68,000,000 = 68,117,600)
    aws = eviction.model_memory({}, "ml.m5.xlarge", 84_000, image_version="1.7-1")  # AWS reports no budget
    local = eviction.model_memory({"memory_budget_bytes": 10 * 117_600}, "ml.m5.xlarge", 84_000, image_version="1.7-1")
    assert aws["capacity (models)"] == 201 and local["capacity (models)"] == 10


def model_file_bytes(artifact: bytes) -> int:
    """The size of the model file inside an uploaded model.tar.gz (what the endpoint loads)."""
    with tarfile.open(fileobj=io.BytesIO(artifact)) as archive:
        return sum(member.size for member in archive if member.isfile())


def test_an_instance_type_budget_charges_each_loaded_model_its_model_server_worker(ctx, clients):
    """Without an explicit budget an endpoint holds what AWS would: the instance's memory for models
    divided by model plus worker; MME_LOCAL_WORKER_MB sets the worker's share."""
    artifact = model_tar(train_booster())
    name, prefix = make_endpoint(ctx, clients, instance="ml.m5.large")
    put_model(ctx, clients, prefix, "m.tar.gz", body=artifact)
    invoke(clients, name, "0.5,0.5,0.5,0.5,0.5,0.5")
    loaded = loaded_models(name)
    assert loaded.attrs["memory_budget_bytes"] == M5_LARGE_FOR_MODELS
    assert loaded.attrs["worker_bytes"] == WORKER
    assert loaded.loc["m.tar.gz", "memory_bytes"] == int(model_file_bytes(artifact) * 1.4) + WORKER

    # a 10 MB budget with 3 MB workers holds 3 small models: the fourth evicts the first
    name, prefix = make_endpoint(ctx, clients, environment={"MME_LOCAL_MEMORY_BUDGET_MB": "10", "MME_LOCAL_WORKER_MB": "3"})
    for i in range(4):
        put_model(ctx, clients, prefix, f"m{i}.tar.gz", body=artifact)
        invoke(clients, name, "0.5,0.5,0.5,0.5,0.5,0.5", target=f"m{i}.tar.gz")
    loaded = loaded_models(name)
    assert loaded["evictions"].to_dict() == {"m0.tar.gz": 1, "m1.tar.gz": 0, "m2.tar.gz": 0, "m3.tar.gz": 0}


def test_the_endpoint_evicts_exactly_as_lru_under_a_skewed_stream(ctx, clients):
    """300 Zipf-distributed requests over 12 models of one size, memory for 4: every model's loads
    and evictions, the hit count in CloudWatch and LoadedModelCount agree with the simulation."""
    booster = train_booster()
    size = int(len(booster.save_raw("ubj")) * 1.4)  # in memory: 1.4 x the model file
    name, prefix = make_endpoint(ctx, clients, environment={"MME_LOCAL_MEMORY_BUDGET_MB": str(4.5 * size / 1e6)})
    targets = [f"m{i:02d}.tar.gz" for i in range(12)]
    for target in targets:
        put_model(ctx, clients, prefix, target, booster)
    rng = np.random.default_rng(3)
    weights = 1 / np.arange(1, 13) ** 1.1
    stream = [targets[i] for i in rng.choice(12, size=300, p=weights / weights.sum())]
    capacity = eviction.capacity_in_models(loaded_models(name).attrs["memory_budget_bytes"], size)
    assert capacity == 4

    runtime = ctx.client("sagemaker-runtime")
    requests = RequestCounter(runtime)
    started = dt.datetime.now(dt.UTC)
    observed = eviction.run_sequence(
        lambda target: float(invoke(clients, name, "1,2,3,4,5,6", target, ContentType="text/csv")[0].strip("[]")), stream
    )
    for target in stream[:5]:  # counted: the same client path the notebook counts
        runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", TargetModel=target, Body="1,2,3,4,5,6")
    simulated = eviction.simulate_lru(stream + stream[:5], capacity)

    check = eviction.check_against_endpoint(simulated, loaded_models(name))
    assert check["same"].all(), check[~check["same"]]
    assert check["lru: evictions"].sum() > 50  # the stream really churns the cache
    assert len(observed) == 300 and requests.sent == 5

    metrics = wait_for_metrics(clients.cloudwatch, name, len(simulated), timeout_seconds=20, poll_seconds=0.2)
    hits = int((simulated["lru says"] == "hit").sum())
    assert metrics.loc["ModelCacheHit", "sum"] == hits and metrics.loc["ModelCacheHit", "samples"] == len(simulated)
    assert metrics.loc["ModelUnloadingTime", "samples"] == check["lru: evictions"].sum()
    assert metrics.loc["ModelLoadingTime", "samples"] == len(simulated) - hits
    counts = metric_counts(metrics)
    assert counts.loc["ModelCacheHit", "sum"] == f"{hits:,}" and counts.loc["LoadedModelCount", "sum"] == "at most 4"
    series = metric_series(clients.cloudwatch, name, ["LoadedModelCount", "ModelUnloadingTime"], 1, started)
    assert series["LoadedModelCount"].max() == capacity
    assert series["ModelUnloadingTime"].sum() == check["lru: evictions"].sum()
