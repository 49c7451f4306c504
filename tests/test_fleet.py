"""The fleet of 08 and 09: names, the request stream, the two ways of training, the replay kept for 09, and what it
costs (on AWS too)."""

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


def test_the_per_model_check_says_what_each_mode_shows():
    """Local mode's per-model counts give "N of M models"; AWS's empty table says that AWS shows none,
    never "0 of M models ... exactly as the simulation says"."""
    import pandas as pd

    from mme_helpers import eviction

    simulated = eviction.simulate_lru(list("abacab"), capacity=2)  # three models: a, b, c
    empty = pd.DataFrame(columns=["loads", "evictions"])  # loaded_models on AWS
    on_aws = fleet.per_model_check(eviction.check_against_endpoint(simulated, empty))
    assert on_aws.startswith("AWS shows no per-model state: the 3 models' loads") and "0 of" not in on_aws
    counts = eviction.per_model_counts(simulated)
    local = counts.copy()
    local.loc["c", "loads"] += 1  # one model the endpoint loaded once more than the simulation says
    said = fleet.per_model_check(eviction.check_against_endpoint(simulated, local))
    assert said.startswith("2 of 3 models: the local endpoint loaded and evicted them exactly as the LRU simulation says")
    assert "does not show that AWS would" in said


def test_08s_replay_is_found_by_09_by_the_run_name(tmp_path):
    names = RunNames("replays")
    with pytest.raises(FileNotFoundError, match="run 08_thousand_models first"):
        fleet.load_replays(names, tmp_path)
    fleet.save_replay(names, "1 x ml.m5.large", {"LRU hit ratio": 0.641, "endpoint hit ratio": 0.641}, tmp_path)
    fleet.save_replay(names, "1 x ml.m5.large", {"LRU hit ratio": 0.641, "endpoint hit ratio": 0.5}, tmp_path)  # again
    table = fleet.load_replays(names, tmp_path)
    assert table.to_dict("index") == {"1 x ml.m5.large": {"LRU hit ratio": 0.641, "endpoint hit ratio": 0.5}}


def test_progress_bars_end_in_a_line_without_times(capsys):
    """A stored notebook shows the same final line on every machine: no rate, no elapsed time, on stdout."""
    assert fleet._in_threads(lambda item: item * 2, [1, 2, 3], "doubling", "item") == [2, 4, 6]
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.rstrip("\n").split("\r")[-1] == "doubling: 3/3 items"


def test_the_aws_schedule_as_written_out_by_hand():
    """Create, replay, update, replay: minutes from the original example's slowest AWS timings (cold 1,469 ms,
    warm 23 ms) plus 3 minutes for CloudWatch; during the update both configurations bill."""
    table = pricing.aws_schedule([("ml.m5.large", 1, 1000, 500), ("ml.m5.xlarge", 1, 1200, 300)])
    # create: 8 min x 0.115/h = 0.0153; replay: (500 x 1.469 + 1000 x 0.023) / 60 + 3 = 15.625 min x 0.115/h = 0.0299
    # update: 10 min x (0.23 + 0.115)/h = 0.0575
    # replay: (300 x 1.469 + 1200 x 0.023) / 60 + 3 = 10.805 min x 0.23/h = 0.0414
    assert table["minutes"].tolist() == [8, 16, 10, 11, 44]  # 44.43 in all
    assert table["USD"].tolist() == [0.02, 0.03, 0.06, 0.04, 0.14]  # 0.1442 in all
    assert table.index[1] == "replay 1,500 requests on 1 x ml.m5.large (500 misses), then CloudWatch"


def test_autoscaling_calls_are_accepted_locally_but_the_endpoint_keeps_its_instance_count(ctx, clients):
    """09 shows the Application Auto Scaling calls without running them: local mode records them (moto) and
    nothing acts on them."""
    from conftest import model_tar, train_booster
    from test_endpoint import invoke, make_endpoint, put_model

    name, prefix = make_endpoint(ctx, clients)
    put_model(ctx, clients, prefix, "m.tar.gz", body=model_tar(train_booster()))
    autoscaling = ctx.client("application-autoscaling")
    resource_id = f"endpoint/{name}/variant/AllTraffic"
    autoscaling.register_scalable_target(
        ServiceNamespace="sagemaker", ResourceId=resource_id,
        ScalableDimension="sagemaker:variant:DesiredInstanceCount", MinCapacity=2, MaxCapacity=4,
    )  # fmt: skip
    autoscaling.put_scaling_policy(
        PolicyName="invocations-per-instance", ServiceNamespace="sagemaker", ResourceId=resource_id,
        ScalableDimension="sagemaker:variant:DesiredInstanceCount", PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 1.0,
            "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
        },
    )  # fmt: skip
    targets = autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[resource_id])
    assert targets["ScalableTargets"][0]["MinCapacity"] == 2
    for _ in range(20):  # far above a target of 1 invocation per instance
        invoke(clients, name, "0.5,0.5,0.5,0.5,0.5,0.5")
    variant = clients.sagemaker.describe_endpoint(EndpointName=name)["ProductionVariants"][0]
    assert variant["CurrentInstanceCount"] == 1  # not even the registered minimum of 2


def test_a_rerun_of_08_restarts_its_endpoint_on_fresh_instances_with_empty_caches(ctx, clients):
    """08 run twice: the second run finds the fleet endpoint (perhaps moved by 09) and moves it to fresh
    instances of the first type, each time through a configuration it is not on, so the replay starts from an
    empty cache as the simulation does."""
    from conftest import model_tar, train_booster
    from test_endpoint import IMAGE, invoke

    from mme_helpers.endpoint import loaded_models, wait_for_endpoint

    names = RunNames(unique("rerun"))
    prefix = f"tests/{names.run}/fleet/"
    sm = clients.sagemaker
    container = {"Image": IMAGE, "Mode": "MultiModel", "ModelDataUrl": f"s3://{ctx.bucket}/{prefix}"}
    sm.create_model(ModelName=names.fleet_model, ExecutionRoleArn=ctx.role, PrimaryContainer=container)
    variant = {"VariantName": "AllTraffic", "ModelName": names.fleet_model, "InstanceType": "ml.m5.large"}
    variant["InitialInstanceCount"] = 2  # as 09 leaves it
    sm.create_endpoint_config(EndpointConfigName=names.fleet_endpoint, ProductionVariants=[variant])
    sm.create_endpoint(EndpointName=names.fleet_endpoint, EndpointConfigName=names.fleet_endpoint)
    wait_for_endpoint(sm, names.fleet_endpoint, 0.2)
    clients.s3.put_object(Bucket=ctx.bucket, Key=prefix + "m.tar.gz", Body=model_tar(train_booster()))
    invoke(clients, names.fleet_endpoint, "0.5,0.5,0.5,0.5,0.5,0.5")
    assert len(loaded_models(names.fleet_endpoint).attrs["loaded_models"]) == 1

    configs = [fleet.restart_empty(sm, names, "ml.m5.large", 0.2) for _ in range(2)]
    assert configs == [names.fleet_config("ml.m5.large", 1), names.fleet_config("ml.m5.large", 1) + "-b"]
    described = sm.describe_endpoint(EndpointName=names.fleet_endpoint)
    assert described["EndpointStatus"] == "InService" and described["EndpointConfigName"] == configs[1]
    assert described["ProductionVariants"][0]["CurrentInstanceCount"] == 1
    assert loaded_models(names.fleet_endpoint).attrs["loaded_models"] == []


def test_requests_are_put_in_the_cloudwatch_periods_that_metric_series_labels():
    """AWS's 1-minute periods start on whole minutes: started 50 s into a minute, requests at 0 and 9.9 s are in
    the minute that began 50 s before (metric_series labels a datapoint stamped then -60), 15 s in the next (0).
    Local mode's 1-second periods start at ``started``: requests at 0, 0.5, 1.7 s fall in periods 0, 0, 1."""
    import datetime as dt

    started = dt.datetime.fromtimestamp(6_000 + 50, dt.UTC)
    assert fleet.cloudwatch_periods([0, 9.9, 15], started, 60).tolist() == [-60, -60, 0]
    stamps = [dt.datetime.fromtimestamp(t, dt.UTC) for t in (6_000, 6_060)]  # datapoints stamped at the minutes
    assert [(t - started).total_seconds() // 60 * 60 for t in stamps] == [-60, 0]  # metric_series' labels
    local = dt.datetime.fromtimestamp(100.4, dt.UTC)
    assert fleet.cloudwatch_periods([0, 0.5, 1.7], local, 1).tolist() == [0, 0, 1]
