"""Eviction made visible (mme_helpers.eviction and the metrics helpers of notebook 04): the LRU
simulation itself, then the local endpoint checked against it under a skewed request stream."""

import datetime as dt

import numpy as np
import pytest
from conftest import train_booster
from test_endpoint import invoke, make_endpoint, put_model

from mme_helpers import eviction
from mme_helpers.cloudwatch import metric_counts, metric_series, wait_for_metrics
from mme_helpers.endpoint import loaded_models
from mme_helpers.invoke import RequestCounter
from mme_helpers.sagemaker_hosting import MODEL_SERVER_WORKER_BYTES, RESIDENT_FACTOR, model_memory_budget


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


def test_models_that_fit_on_an_instance():
    table = eviction.seed_models_per_instance("ml.m5.xlarge", 84_000)
    by_file, with_worker = table["models that fit"].tolist()
    budget = model_memory_budget("ml.m5.xlarge")  # 80 % of 16 GiB: the rest is the OS's and the server's
    assert by_file == budget // 84_000
    assert with_worker == budget // (84_000 * RESIDENT_FACTOR + MODEL_SERVER_WORKER_BYTES) and 150 < with_worker < 300
    aws = eviction.model_memory({}, "ml.m5.xlarge", 84_000)  # AWS reports no budget
    local = eviction.model_memory({"memory_budget_bytes": 10 * int(84_000 * RESIDENT_FACTOR)}, "ml.m5.xlarge", 84_000)
    assert aws["capacity (models)"] == with_worker and local["capacity (models)"] == 10


def test_an_instance_type_budget_charges_each_loaded_model_its_model_server_worker(ctx, clients):
    """Without an explicit budget an endpoint holds what AWS would: the instance's memory for models
    divided by model plus worker; MME_LOCAL_WORKER_MB sets the worker's share."""
    booster = train_booster()
    name, prefix = make_endpoint(ctx, clients, instance="ml.m5.large")
    put_model(ctx, clients, prefix, "m.tar.gz", booster)
    invoke(clients, name, "0.5,0.5,0.5,0.5,0.5,0.5")
    loaded = loaded_models(name)
    assert loaded.attrs["memory_budget_bytes"] == model_memory_budget("ml.m5.large")
    assert loaded.attrs["worker_bytes"] == MODEL_SERVER_WORKER_BYTES
    assert (
        loaded.loc["m.tar.gz", "memory_bytes"]
        == int(loaded.loc["m.tar.gz", "size_bytes"] * RESIDENT_FACTOR) + MODEL_SERVER_WORKER_BYTES
    )

    # a 10 MB budget with 3 MB workers holds 3 small models: the fourth evicts the first
    name, prefix = make_endpoint(ctx, clients, environment={"MME_LOCAL_MEMORY_BUDGET_MB": "10", "MME_LOCAL_WORKER_MB": "3"})
    for i in range(4):
        put_model(ctx, clients, prefix, f"m{i}.tar.gz", booster)
        invoke(clients, name, "0.5,0.5,0.5,0.5,0.5,0.5", target=f"m{i}.tar.gz")
    loaded = loaded_models(name)
    assert loaded["evictions"].to_dict() == {"m0.tar.gz": 1, "m1.tar.gz": 0, "m2.tar.gz": 0, "m3.tar.gz": 0}


def test_the_endpoint_evicts_exactly_as_lru_under_a_skewed_stream(ctx, clients):
    """300 Zipf-distributed requests over 12 models of one size, memory for 4: every model's loads
    and evictions, the hit count in CloudWatch and LoadedModelCount agree with the simulation."""
    booster = train_booster()
    size = int(len(booster.save_raw("ubj")) * RESIDENT_FACTOR)  # in memory
    name, prefix = make_endpoint(ctx, clients, environment={"MME_LOCAL_MEMORY_BUDGET_MB": str(4.5 * size / 2**20)})
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
