"""UpdateEndpoint (Updating while the old configuration serves, then the new one with cold caches,
or a roll-back with the reason) and endpoints of several instances (one cache each, requests routed
as AWS documents: to the instance that has the model loaded, to another when that one is busy)."""

import asyncio
import concurrent.futures
import datetime as dt

import pytest
from botocore.exceptions import ClientError
from conftest import train_booster, unique, wait_until
from test_endpoint import invoke, make_endpoint, not_xgboost_model, put_model
from test_registry import ARTIFACT, MODEL_MEMORY, Source, loads_done, until

from mme_helpers import eviction
from mme_helpers.endpoint import loaded_models
from mme_helpers.local.runtime.hosting import EndpointRuntime
from mme_helpers.local.runtime.registry import ModelNotReady, ModelRegistry, RegistryConfig
from mme_helpers.sagemaker_hosting import InstanceLoad, busy_at, instance_index


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


def test_several_instances_route_a_model_to_the_instance_that_holds_it(ctx, clients):
    """Three instances of three models each: a model's requests go to the instance that has it loaded
    (AWS's rule), new models to the instance with the fewest; each instance evicts its own least
    recently used model. Checked per request (the x-mme-local-instance header) and per model."""
    booster = train_booster()
    size = int(len(booster.save_raw("ubj")) * 1.4)  # in memory: 1.4 x the model file
    name, prefix = make_endpoint(ctx, clients, environment={"MME_LOCAL_MEMORY_BUDGET_MB": str(3.5 * size / 1e6)})
    three = new_config(ctx, clients, name, count=3)
    clients.sagemaker.update_endpoint(EndpointName=name, EndpointConfigName=three)
    clients.sagemaker.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig={"Delay": 0.2})
    assert clients.sagemaker.describe_endpoint(EndpointName=name)["ProductionVariants"][0]["CurrentInstanceCount"] == 3
    # m0..m8 hash 3/4/2 over three instances (crc32 % 3), so a hash of the name would overflow one
    targets = [f"m{i}.tar.gz" for i in range(12)]
    for target in targets:
        put_model(ctx, clients, prefix, target, booster)
    first, newcomers = targets[:9], targets[9:]
    stream = first + first + newcomers + first
    started = dt.datetime.now(dt.UTC)
    served = []
    for target in stream:
        _, response = invoke(clients, name, "1,2,3,4,5,6", target, ContentType="text/csv")
        served.append(int(response["ResponseMetadata"]["HTTPHeaders"]["x-mme-local-instance"]))
    # written out by hand: nine new models fill three empty instances three each, and the second pass
    # finds each where the first put it
    assert sorted(served[:9].count(k) for k in range(3)) == [3, 3, 3]
    assert served[9:18] == served[:9]
    state = loaded_models(name)
    assert state.attrs["instances"] == 3
    assert state[state["state"] == "in memory"].groupby("instance").size().max() <= 3  # each instance's own budget
    # the oracle: the several-instances simulation (checked by hand in the next test) routes every
    # request to the same instance and loads and evicts every model on it as the endpoint did
    simulated = eviction.simulate_instances(stream, capacity=3, instances=3)
    assert served == simulated["instance"].tolist()
    for instance, models in state.groupby("instance"):
        share = simulated[simulated["instance"] == instance]
        assert set(models.index) == set(share["target_model"]), instance
        check = eviction.check_against_endpoint(share, models)
        assert check["same"].all(), (instance, check[~check["same"]])
    assert state["evictions"].sum() > 0  # the newcomers overflow the instances
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
        return found if len(found) >= 4 else None

    found = sorted(wait_until(points, timeout=20, interval=0.5), key=lambda p: p["Timestamp"])
    whole = found[1:-1]  # the window's first and last seconds may hold part of a publish
    assert whole and all(p["SampleCount"] % 3 == 0 for p in whole), found  # one value per instance per publish
    assert max(p["Maximum"] for p in found) <= 3


# routing, written out by hand -------------------------------------------------------------------------------
# crc32 of the names used below (zlib.crc32, written out): a 3904355907, b 1908338681, c 112844655,
# d 2564639436, e 4024072794, f 1993550816; odd for a, b, c, even for d, e, f.


def test_routing_prefers_the_instance_that_holds_the_model_and_spreads_it_when_busy():
    def load(holds, in_flight, models):
        return InstanceLoad(holds=holds, in_flight=in_flight, models=models)

    # held: served there, even by the fuller instance
    assert instance_index("a", [load(False, 0, 0), load(True, 0, 5)], busy=2) == 1
    # held by two: the less busy one
    assert instance_index("a", [load(True, 1, 3), load(True, 0, 3)], busy=2) == 1
    # the holder is busy and another instance is not: the model is loaded there too
    assert instance_index("a", [load(True, 2, 1), load(False, 0, 3)], busy=2) == 1
    assert instance_index("a", [load(True, 2, 1), load(False, 1, 3), load(False, 0, 4)], busy=2) == 2
    # every instance busy: the holder serves (a second copy would wait as well)
    assert instance_index("a", [load(False, 2, 0), load(True, 3, 1)], busy=2) == 1
    # held nowhere: fewest requests in flight, then fewest models
    assert instance_index("a", [load(False, 1, 0), load(False, 0, 4), load(False, 0, 2)], busy=2) == 2
    # equally loaded: the hash of the name picks among them (a odd, d even)
    assert instance_index("a", [load(False, 0, 1), load(False, 0, 1)], busy=2) == 1
    assert instance_index("d", [load(False, 0, 1), load(False, 0, 1)], busy=2) == 0


def test_an_instance_is_busy_when_its_vcpus_are_taken():
    """vCPUs from AWS's instance pages, written out."""
    assert [busy_at(t) for t in ("ml.t2.medium", "ml.m5.large", "ml.m5.xlarge", "ml.m5.4xlarge", "ml.c5.9xlarge")] == [
        2, 2, 4, 16, 36,
    ]  # fmt: skip


def test_the_several_instances_simulation_routes_as_written_out_by_hand():
    """Two instances of two models each; every step below follows the rule by hand."""
    simulated = eviction.simulate_instances(list("abcadbeadfcb"), capacity=2, instances=2)
    rows = list(zip(simulated["instance"], simulated["lru says"], simulated["load from"], simulated["evicts"], strict=True))
    assert rows == [
        (1, "miss", "S3", ""),  # a: both empty, a odd -> 1
        (0, "miss", "S3", ""),  # b: fewest models -> 0
        (1, "miss", "S3", ""),  # c: one each, c odd -> 1
        (1, "hit", "", ""),  # a: held by 1
        (0, "miss", "S3", ""),  # d: 0 has one model, 1 two -> 0
        (0, "hit", "", ""),  # b: held by 0
        (0, "miss", "S3", "d"),  # e: two each, e even -> 0, which evicts its least recent (d)
        (1, "hit", "", ""),  # a: held by 1
        (0, "miss", "disk", "b"),  # d: held nowhere, two each, d even -> 0, which has it on disk
        (0, "miss", "S3", "e"),  # f: f even -> 0
        (1, "hit", "", ""),  # c: held by 1
        (1, "miss", "S3", "a"),  # b: held nowhere (evicted from 0), b odd -> 1, which never had it
    ]


def _runtime(tmp_path, source, instances=2, busy=2, **config):
    executor = concurrent.futures.ThreadPoolExecutor(4)
    runtime = EndpointRuntime(name="e", region="us-west-2", variant="AllTraffic", multi_model=True, default_accept=None)
    runtime.busy = busy
    for number in range(instances):
        budget = RegistryConfig(memory_budget=int(3.5 * MODEL_MEMORY), disk_budget=10**9, **config)
        runtime.instances.append(ModelRegistry(source, tmp_path / f"instance-{number}", budget, executor))
    return runtime


def test_a_busy_instance_spreads_its_model_to_another(tmp_path):
    """Two requests for a model are in flight on its instance (busy: as many as its vCPUs); a third
    is served by the other instance, which loads the model too. Loads are held at a gate."""
    source = Source({"hot": ARTIFACT}, gated=["hot"])
    runtime = _runtime(tmp_path, source)

    async def scenario():
        answered = asyncio.Event()

        async def request():
            async with runtime.serving("hot") as served:
                await answered.wait()
                return served.instance, served.hit

        first = [asyncio.ensure_future(request()) for _ in range(2)]
        await until(lambda: sum(runtime.in_flight.values()) == 2)
        holder = next(number for number, count in runtime.in_flight.items() if count == 2)
        third = asyncio.ensure_future(request())
        await until(lambda: sum(runtime.in_flight.values()) == 3)
        source.gates["hot"].set()
        answered.set()
        results = await asyncio.gather(*first, third)
        after = await request_once()
        return holder, results, after

    async def request_once():
        async with runtime.serving("hot") as served:
            return served.instance, served.hit

    holder, results, after = asyncio.run(scenario())
    other = 1 - holder
    assert results == [(holder, False), (holder, False), (other, False)]
    assert source.fetches == {"hot": 2}  # loaded on both instances
    assert after == (0, True) and sum(runtime.in_flight.values()) == 0  # held by both, idle: the first


def test_a_model_still_loading_answers_not_ready_and_is_not_counted_in_flight_after(tmp_path):
    """The documented ModelNotReadyException: the request gives up, the load goes on on its instance,
    and the next request joins it there."""
    source = Source({"slow": ARTIFACT}, gated=["slow"])
    runtime = _runtime(tmp_path, source, load_wait_limit=0.01)

    async def scenario():
        with pytest.raises(ModelNotReady):
            async with runtime.serving("slow"):
                pass
        assert sum(runtime.in_flight.values()) == 0
        loading = [number for number, registry in enumerate(runtime.instances) if "slow" in registry.loading]
        source.gates["slow"].set()
        await loads_done(runtime.instances[loading[0]])
        async with runtime.serving("slow") as served:
            return loading, served.instance, served.hit

    loading, instance, hit = asyncio.run(scenario())
    assert loading == [instance] and hit and source.fetches == {"slow": 1}
