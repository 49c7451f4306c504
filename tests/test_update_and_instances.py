"""UpdateEndpoint (Updating while the old configuration serves, then the new one with cold caches,
or a roll-back with the reason) and endpoints of several instances (one cache each, a model always
on the same instance)."""

import datetime as dt

import pytest
from botocore.exceptions import ClientError
from conftest import train_booster, unique, wait_until
from test_endpoint import invoke, make_endpoint, not_xgboost_model, put_model

from mme_helpers import eviction
from mme_helpers.endpoint import loaded_models


def new_config(ctx, clients, model_name, instance_type="ml.m5.large", count=1):
    name = unique("cfg")
    clients.sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": model_name,
                "InitialInstanceCount": count,
                "InstanceType": instance_type,
            }
        ],
    )
    return name


def test_update_endpoint_moves_to_the_new_configuration_with_cold_caches(ctx, clients):
    name, prefix = make_endpoint(ctx, clients, instance="ml.m5.large")
    put_model(ctx, clients, prefix, "m.tar.gz", train_booster())
    before = invoke(clients, name, "1,2,3,4,5,6", ContentType="text/csv")[0]
    assert loaded_models(name).attrs["memory_budget_bytes"] == int(8 * 2**30 * 0.8)
    bigger = new_config(ctx, clients, name, "ml.m5.2xlarge")

    clients.sagemaker.update_endpoint(EndpointName=name, EndpointConfigName=bigger)  # Updating: test_sagemaker_backend
    clients.sagemaker.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig={"Delay": 0.2})
    described = clients.sagemaker.describe_endpoint(EndpointName=name)
    assert described["EndpointConfigName"] == bigger and "FailureReason" not in described
    state = loaded_models(name)
    assert state.attrs["memory_budget_bytes"] == int(32 * 2**30 * 0.8) and state.empty  # a cold cache
    assert invoke(clients, name, "1,2,3,4,5,6", ContentType="text/csv")[0] == before
    assert loaded_models(name).loc["m.tar.gz", "misses"] == 1


def test_a_failed_update_rolls_back_and_says_why(ctx, clients):
    name, prefix = make_endpoint(ctx, clients)
    put_model(ctx, clients, prefix, "m.tar.gz", train_booster())
    broken = unique("broken")
    not_xgboost_model(ctx, clients, broken, prefix)
    clients.sagemaker.update_endpoint(EndpointName=name, EndpointConfigName=new_config(ctx, clients, broken))
    described = wait_until(
        lambda: (
            (d := clients.sagemaker.describe_endpoint(EndpointName=name))["EndpointStatus"] == "InService"
            and "FailureReason" in d
            and d
        )
    )
    assert "only the built-in XGBoost image" in described["FailureReason"] and described["EndpointConfigName"] == name
    assert invoke(clients, name, "1,2,3,4,5,6", ContentType="text/csv")[0]


def test_updating_an_endpoint_that_is_not_in_service_is_refused(ctx, clients):
    name = unique("failed")
    not_xgboost_model(ctx, clients, name, "x/")
    clients.sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=new_config(ctx, clients, name))
    wait_until(lambda: clients.sagemaker.describe_endpoint(EndpointName=name)["EndpointStatus"] == "Failed")
    with pytest.raises(ClientError, match="in status Failed"):
        clients.sagemaker.update_endpoint(EndpointName=name, EndpointConfigName=new_config(ctx, clients, name))
    serving, _ = make_endpoint(ctx, clients)
    with pytest.raises(ClientError, match="Could not find endpoint configuration"):
        clients.sagemaker.update_endpoint(EndpointName=serving, EndpointConfigName="no-such-config")


def test_several_instances_have_one_cache_each_and_route_a_model_to_one(ctx, clients):
    booster = train_booster()
    size = int(len(booster.save_raw("ubj")) * 1.4)  # in memory: 1.4 x the model file
    name, prefix = make_endpoint(ctx, clients, environment={"MME_LOCAL_MEMORY_BUDGET_MB": str(3.5 * size / 2**20)})
    three = new_config(ctx, clients, name, count=3)
    clients.sagemaker.update_endpoint(EndpointName=name, EndpointConfigName=three)
    clients.sagemaker.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig={"Delay": 0.2})
    assert clients.sagemaker.describe_endpoint(EndpointName=name)["ProductionVariants"][0]["CurrentInstanceCount"] == 3
    targets = [f"m{i}.tar.gz" for i in range(9)]
    for target in targets:
        put_model(ctx, clients, prefix, target, booster)
    started = dt.datetime.now(dt.UTC)
    for _ in range(2):
        for target in targets:
            invoke(clients, name, "1,2,3,4,5,6", target, ContentType="text/csv")
    state = loaded_models(name)
    assert state.attrs["instances"] == 3
    assert (state["loads"] >= 1).all() and state.index.is_unique  # each model lives on one instance
    per_instance = state.groupby("instance").size()
    assert len(per_instance) > 1  # spread over the instances
    assert state[state["state"] == "in memory"].groupby("instance").size().max() <= 3  # each instance's own budget
    # the oracle: the routing the endpoint shows (each model on one instance), and an exact LRU cache
    # of 3 models per instance fed that instance's share of the stream
    stream = targets * 2
    for instance, models in state.groupby("instance"):
        share = [target for target in stream if target in models.index]
        check = eviction.check_against_endpoint(eviction.simulate_lru(share, capacity=3), models)
        assert check["same"].all(), (instance, check[~check["same"]])
    assert state["evictions"].sum() > 0  # the stream overflows some instance
    # CloudWatch gets LoadedModelCount once per instance and flush: every past second holds a multiple of 3
    # (the newest flush is left out: CloudWatch may still be storing it)

    def points():
        end = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1.5)
        if end - started < dt.timedelta(seconds=2):  # CloudWatch compares whole seconds
            return None
        found = clients.cloudwatch.get_metric_statistics(
            Namespace="/aws/sagemaker/Endpoints",
            MetricName="LoadedModelCount",
            Dimensions=[{"Name": "EndpointName", "Value": name}, {"Name": "VariantName", "Value": "AllTraffic"}],
            StartTime=started,
            EndTime=end,
            Period=1,
            Statistics=["SampleCount", "Maximum"],
        )["Datapoints"]
        return found if len(found) >= 2 else None

    found = wait_until(points, timeout=20, interval=0.5)
    assert all(p["SampleCount"] % 3 == 0 for p in found), found
    assert max(p["Maximum"] for p in found) <= 3
