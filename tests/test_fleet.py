"""The fleet of 06: names, the request stream, the two ways of training, and what it costs."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import unique

from mme_helpers import container_xgboost, data, fleet, pricing
from mme_helpers.naming import RunNames

IMAGE = "246618743249.dkr.ecr.us-west-2.amazonaws.com/sagemaker-xgboost:1.7-1"
HYPERPARAMETERS = {"max_depth": 4, "eta": 0.3, "subsample": 0.7, "objective": "reg:squarederror", "num_round": 20}


def test_town_names_and_where_to_train():
    assert fleet.town_names(3) == ["Town0000", "Town0001", "Town0002"]
    with pytest.raises(ValueError, match="NUM_MODELS"):
        fleet.town_names(0)
    assert fleet.training_place("auto", "local") == "training jobs"
    assert fleet.training_place("auto", "aws") == "this machine"  # a thousand jobs on AWS: see fleet's docstring
    with pytest.raises(ValueError, match="TRAIN_ON"):
        fleet.training_place("cluster", "local")


def test_job_names_are_unique_per_training_and_within_sagemakers_limit():
    names = RunNames("a-twenty-char-name-x")
    jobs = fleet.job_names(names, fleet.town_names(1000), "1130182540")
    assert len(set(jobs.values())) == 1000 and max(map(len, jobs.values())) <= 63


def test_the_zipf_stream_is_seeded_and_skewed():
    targets = [f"m{i}" for i in range(1000)]
    stream = fleet.zipf_stream(targets, 5000, 1.1, seed=7)
    assert stream == fleet.zipf_stream(targets, 5000, 1.1, seed=7)
    assert stream != fleet.zipf_stream(targets, 5000, 1.1, seed=8)
    shape = fleet.stream_shape(stream, 1000)
    assert shape["share of requests"].iloc[0] > 0.4  # the top 1 % of models get over 40 % of requests
    assert sorted(stream[:50]) != sorted(targets[:50])  # popularity is not the order of the names
    with pytest.raises(ValueError):
        fleet.zipf_stream(targets, 10, 0, seed=1)


def test_both_ways_of_training_give_the_same_models_that_the_container_predicts_with(ctx, clients, tmp_path):
    """Training jobs (local mode) and this machine (AWS) make the same artifact from the same data,
    each predicting in XGBoost 1.7.4 what it predicts here."""
    towns = fleet.town_names(3)
    data.generate_dataset(towns, 200, 7, tmp_path)
    predictions = {}
    for place in fleet.PLACES:
        names = RunNames(unique("fl").replace("-", "")[:12])
        table = fleet.train_fleet(
            ctx, names, towns, tmp_path, HYPERPARAMETERS, IMAGE, names.fleet_prefix, place, "ml.m5.xlarge"
        )
        assert list(table.index) == towns and table["validation_rmse"].notna().all()
        artifacts = fleet.sample_artifacts(clients.s3, ctx.bucket, names.fleet_prefix, towns, 3, seed=1)
        houses = data.read_split(tmp_path, towns[0], "test")[list(data.FEATURES)].to_numpy()
        checked = container_xgboost.check_artifacts(artifacts, houses)
        assert checked["loads"].all() and (checked["largest difference"] < 1.0).all(), checked
        predictions[place] = {town: container_xgboost.model_file(artifact) for town, artifact in artifacts.items()}
    jobs, here = (predictions[place] for place in fleet.PLACES)
    assert jobs == here  # byte for byte


def test_one_endpoint_per_model_costs_the_fleet_size_times_the_smallest_instance():
    costs = pricing.mme_against_endpoint_per_model([("mme", "ml.m5.large", 1)], 1000, "ml.t2.medium")
    assert costs.loc["mme", "USD per month"] == round(0.115 * 730)
    assert costs.iloc[-1]["USD per hour"] == pytest.approx(56.0)
    assert costs.loc["mme", "times cheaper than one endpoint per model"] == round(40_880 / 84)
    with pytest.raises(KeyError, match="no price"):
        pricing.hourly("ml.p5.48xlarge")


def test_latency_is_summarised_by_what_the_simulation_says_each_request_was():
    from mme_helpers.eviction import simulate_lru

    stream = ["a", "b", "a", "c", "a", "b"]
    simulated = simulate_lru(stream, capacity=2)
    records = fleet.pd.DataFrame({"latency_ms": [10.0, 11.0, 1.0, 12.0, 1.2, 5.0]}, index=simulated.index)
    table = fleet.latency_by_outcome(records, simulated)
    assert table["requests"].to_dict() == {"hit": 2, "miss from S3": 3, "miss from disk": 1}
    assert np.isclose(table.loc["hit", "p50 ms"], 1.1)
