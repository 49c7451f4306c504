"""The model-server worker each loaded model costs, per XGBoost container version (this project's model
of AWS, measured by benchmarks/bench_worker_memory.py): the capacity figures the notebooks print and the
local endpoint's budget both charge the worker of the container version in use."""

import pytest
from conftest import model_tar, train_booster, unique
from test_endpoint import invoke, put_model

from mme_helpers import eviction
from mme_helpers.endpoint import loaded_models, wait_for_endpoint

# Written out by hand: 80 % of an ml.m5.xlarge's 16 GiB is 13,743,895,347 bytes (ml.m5.large: 6,871,947,673);
# a worker is 68 MB for 1.7-1 (XGBoost 1.7.4, measured 67.2 MB) and 71 MB for 3.0-5 (XGBoost 3.0.5,
# measured 70.3-70.4 MB), rounded up; a loaded model is 1.4 x its file (84,000 -> 117,600 bytes).
M5_XLARGE_FOR_MODELS = 13_743_895_347
M5_LARGE_FOR_MODELS = 6_871_947_673
WORKER = {"1.7-1": 68_000_000, "3.0-5": 71_000_000}


@pytest.mark.parametrize(
    "version, fits",
    [
        ("1.7-1", 201),  # 13,743,895,347 // 68,117,600 = 201.8
        ("3.0-5", 193),  # 13,743,895,347 // 71,117,600 = 193.3
    ],
)
def test_models_per_instance_are_counted_with_the_worker_of_the_container_version(version, fits):
    table = eviction.seed_models_per_instance("ml.m5.xlarge", 84_000, image_version=version)
    assert table["models that fit"].tolist() == [163_617, fits]
    assert eviction.model_memory({}, "ml.m5.xlarge", 84_000, image_version=version)["capacity (models)"] == fits


def test_a_version_without_a_measurement_is_charged_as_its_release_line():
    one_x = eviction.seed_models_per_instance("ml.m5.xlarge", 84_000, image_version="1.5-1")
    newer = eviction.seed_models_per_instance("ml.m5.xlarge", 84_000, image_version="3.2-0")
    assert one_x["models that fit"].iloc[1] == 201 and newer["models that fit"].iloc[1] == 193


def test_capacity_by_instance_type_divides_as_its_columns_show():
    """Decimal GB and MB throughout, so that a learner's division of the shown columns gives the count."""
    sizes = [72_913, 79_871]  # the fleet's model files: 1.4 x 79,871 + 71,000,000 = 71,111,819.4 bytes
    table = eviction.capacity_by_instance_type(["ml.m5.large", "ml.m5.4xlarge"], sizes, image_version="3.0-5")
    assert table["memory (GB)"].tolist() == [8.59, 68.72]
    assert table["for models, 80 % (GB)"].tolist() == [6.87, 54.98]
    assert table["MB per loaded model"].tolist() == [71.1, 71.1]
    assert table["capacity (models)"].tolist() == [96, 773]  # 6,871,947,673 // 71,111,819.4 = 96.6; x8 = 773.2
    for _, row in table.iterrows():  # what a reader computes from the rounded columns lands on the same count
        assert int(row["for models, 80 % (GB)"] * 1000 / row["MB per loaded model"]) == row["capacity (models)"]
    assert table.attrs["same for every size"] is True


def make_endpoint_for(ctx, clients, version: str) -> tuple[str, str]:
    """An MME on an ml.m5.large with the XGBoost image of ``version`` and no budget override."""
    name = unique("worker")
    prefix = f"tests/{name}/models/"
    image = f"246618743249.dkr.ecr.us-west-2.amazonaws.com/sagemaker-xgboost:{version}"
    sm = clients.sagemaker
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=ctx.role,
        PrimaryContainer={"Image": image, "Mode": "MultiModel", "ModelDataUrl": f"s3://{ctx.bucket}/{prefix}"},
    )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    wait_for_endpoint(sm, name, 0.2)
    return name, prefix


@pytest.mark.parametrize("version", ["1.7-1", "3.0-5"])
def test_the_local_endpoint_charges_the_worker_of_its_image_version(ctx, clients, version):
    name, prefix = make_endpoint_for(ctx, clients, version)
    put_model(ctx, clients, prefix, "m.tar.gz", body=model_tar(train_booster()))
    invoke(clients, name, "0.5,0.5,0.5,0.5,0.5,0.5")
    loaded = loaded_models(name)
    assert loaded.attrs["memory_budget_bytes"] == M5_LARGE_FOR_MODELS
    assert loaded.attrs["worker_bytes"] == WORKER[version]


def test_the_local_endpoints_budget_is_divided_by_model_and_worker_as_the_endpoint_charges_them():
    """08 prints the local endpoint's own budget beside the table: an instance type's budget is charged a
    worker per model (loaded_models' attrs), an explicit budget is not (worker 0)."""
    by_type = {"memory_budget_bytes": M5_LARGE_FOR_MODELS, "worker_bytes": 71_000_000}
    # 1.4 x 79,871 = 111,819 (int) + 71,000,000 = 71,111,819 -> 6,871,947,673 // 71,111,819 = 96
    assert eviction.model_memory(by_type, "ml.m5.large", 79_871)["capacity (models)"] == 96
    explicit = {"memory_budget_bytes": 10 * 117_600, "worker_bytes": 0}
    assert eviction.model_memory(explicit, "ml.m5.xlarge", 84_000)["capacity (models)"] == 10
