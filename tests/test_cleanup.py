"""Clean-up by name after a complete run, after a run that stopped after training, and twice;
and the guard that refuses to overwrite a model key."""

import pytest
import sagemaker
from conftest import model_tar, train_booster, unique
from sagemaker.multidatamodel import MultiDataModel

from mme_helpers.cleanup import delete_run, inventory, leftovers
from mme_helpers.endpoint import ModelKeyExists, add_model_if_absent, wait_for_endpoint
from mme_helpers.naming import RunNames
from mme_helpers.training import latest_completed_jobs, run_training_jobs

IMAGE = "246618743249.dkr.ecr.us-west-2.amazonaws.com/sagemaker-xgboost:1.7-1"


def train(ctx, clients, names, location):
    """A real (small) training job named as the training notebook names it."""
    key = names.data_prefix(location) + "/train/data.csv"
    clients.s3.put_object(Bucket=ctx.bucket, Key=key, Body=b"".join(b"%d,%d,1\n" % (i * 3, i) for i in range(50)))

    def launch(loc):
        est = sagemaker.estimator.Estimator(
            image_uri=IMAGE,
            role=ctx.role,
            instance_count=1,
            instance_type="ml.m5.xlarge",
            output_path=names.s3_uri(ctx.bucket, names.artifacts_prefix(loc)),
            base_job_name=names.job_base(loc),
            sagemaker_session=ctx.sagemaker_session,
        )
        est.set_hyperparameters(num_round=3)
        est.fit(
            {
                "train": sagemaker.inputs.TrainingInput(
                    names.s3_uri(ctx.bucket, names.data_prefix(loc)) + "/train", content_type="text/csv"
                )
            },
            wait=False,
        )
        return est

    return run_training_jobs([location], launch, 1, 0.05)[location]


def deploy(ctx, clients, names, estimator):
    mme = MultiDataModel(
        name=names.model,
        model_data_prefix=names.s3_uri(ctx.bucket, names.mme_prefix),
        model=estimator.create_model(role=ctx.role, image_uri=IMAGE),
        sagemaker_session=ctx.sagemaker_session,
    )
    mme.deploy(initial_instance_count=1, instance_type="ml.m5.large", endpoint_name=names.endpoint, wait=False)
    wait_for_endpoint(clients.sagemaker, names.endpoint, 0.1)
    mme.add_model(model_data_source=estimator.model_data, model_data_path="Lima_PE.tar.gz")
    return mme


def kinds(frame):
    return sorted(frame["kind"])


def test_cleanup_after_a_complete_run_and_twice(ctx, clients):
    names = RunNames(unique("full").replace("-", "")[:12])
    other = RunNames(names.run + "x")  # a run whose name extends this one must be left alone
    estimator = train(ctx, clients, names, "Lima_PE")
    deploy(ctx, clients, names, estimator)
    clients.s3.put_object(Bucket=ctx.bucket, Key=other.s3_prefix + "/keep.txt", Body=b"x")
    found = inventory(clients.sagemaker, clients.s3, ctx.bucket, names, ["Lima_PE"])
    assert kinds(found) == ["S3 objects", "endpoint", "endpoint config", "model", "training job"]
    done = delete_run(clients.sagemaker, clients.s3, ctx.bucket, names, 0.05)
    assert len(done) == 4  # endpoint, config, model, S3 objects
    assert leftovers(clients.sagemaker, clients.s3, ctx.bucket, names).empty
    assert delete_run(clients.sagemaker, clients.s3, ctx.bucket, names, 0.05).empty  # second time: nothing to do
    assert clients.s3.get_object(Bucket=ctx.bucket, Key=other.s3_prefix + "/keep.txt")["Body"].read() == b"x"
    # the training job stays, as on AWS, and can still be found
    assert latest_completed_jobs(clients.sagemaker, names, ["Lima_PE"])["Lima_PE"]


def test_cleanup_after_a_run_that_stopped_after_training(ctx, clients):
    names = RunNames(unique("half").replace("-", "")[:12])
    train(ctx, clients, names, "Lima_PE")
    assert kinds(inventory(clients.sagemaker, clients.s3, ctx.bucket, names, ["Lima_PE"])) == ["S3 objects", "training job"]
    done = delete_run(clients.sagemaker, clients.s3, ctx.bucket, names, 0.05)
    assert list(done["deleted"]) == [f"S3 objects under s3://{ctx.bucket}/{names.s3_prefix}/ (2)"]
    assert leftovers(clients.sagemaker, clients.s3, ctx.bucket, names).empty


def test_cleanup_deletes_the_fleet_endpoint_with_every_configuration_it_had(ctx, clients):
    """06 deploys its own endpoint and moves it through one configuration per size tried."""
    names = RunNames(unique("fleet").replace("-", "")[:12])
    clients.s3.put_object(Bucket=ctx.bucket, Key=names.fleet_prefix + "Town0000.tar.gz", Body=model_tar(train_booster()))
    container = {"Image": IMAGE, "Mode": "MultiModel", "ModelDataUrl": names.s3_uri(ctx.bucket, names.fleet_prefix)}
    clients.sagemaker.create_model(ModelName=names.fleet_model, PrimaryContainer=container, ExecutionRoleArn=ctx.role)
    configs = [names.fleet_endpoint, names.fleet_config("ml.m5.xlarge"), names.fleet_config("ml.m5.large", 2)]
    for config, count in zip(configs, (1, 1, 2), strict=True):
        variant = {
            "VariantName": "AllTraffic",
            "ModelName": names.fleet_model,
            "InitialInstanceCount": count,
            "InstanceType": "ml.m5.large",
        }
        clients.sagemaker.create_endpoint_config(EndpointConfigName=config, ProductionVariants=[variant])
    clients.sagemaker.create_endpoint(EndpointName=names.fleet_endpoint, EndpointConfigName=configs[0])
    wait_for_endpoint(clients.sagemaker, names.fleet_endpoint, 0.1)
    clients.sagemaker.update_endpoint(EndpointName=names.fleet_endpoint, EndpointConfigName=configs[1])
    wait_for_endpoint(clients.sagemaker, names.fleet_endpoint, 0.1)

    found = inventory(clients.sagemaker, clients.s3, ctx.bucket, names)
    assert sorted(found.loc[found["kind"] == "endpoint config", "name"]) == sorted(configs)
    assert kinds(found) == ["S3 objects", "endpoint", "endpoint config", "endpoint config", "endpoint config", "model"]
    done = delete_run(clients.sagemaker, clients.s3, ctx.bucket, names, 0.05)
    assert len(done) == 6
    assert leftovers(clients.sagemaker, clients.s3, ctx.bucket, names).empty
    assert delete_run(clients.sagemaker, clients.s3, ctx.bucket, names, 0.05).empty


def test_cleanup_when_nothing_was_made(ctx, clients):
    names = RunNames("never-ran")
    assert inventory(clients.sagemaker, clients.s3, ctx.bucket, names, ["X"]).empty
    assert delete_run(clients.sagemaker, clients.s3, ctx.bucket, names).empty


def test_add_model_refuses_to_overwrite(ctx, clients):
    prefix = f"s3://{ctx.bucket}/tests/{unique('guard')}/"
    source = f"tests/{unique('guard-src')}/model.tar.gz"
    clients.s3.put_object(Bucket=ctx.bucket, Key=source, Body=model_tar(train_booster()))
    mme = MultiDataModel(
        name=unique("guard"),
        model_data_prefix=prefix,
        image_uri=IMAGE,
        role=ctx.role,
        sagemaker_session=ctx.sagemaker_session,
    )
    add_model_if_absent(mme, f"s3://{ctx.bucket}/{source}", "NewYork_NY.tar.gz")
    with pytest.raises(ModelKeyExists, match="new name"):
        add_model_if_absent(mme, f"s3://{ctx.bucket}/{source}", "NewYork_NY.tar.gz")
    add_model_if_absent(mme, f"s3://{ctx.bucket}/{source}", "NewYork_NY.tar.gz", overwrite=True)
    add_model_if_absent(mme, f"s3://{ctx.bucket}/{source}", "NewYork_NY_v2.tar.gz")
    assert sorted(mme.list_models()) == ["NewYork_NY.tar.gz", "NewYork_NY_v2.tar.gz"]


def test_cleanup_deletes_what_the_sdk_v3_notebook_left_when_it_stopped_halfway(ctx, clients):
    """10_sdk_v3 names its training job (ModelTrainer's base name + YYYYMMDDHHMMSS), model, endpoint
    configuration, endpoint and model copies from RUN_NAME: the clean-up finds and deletes them."""
    names = RunNames(unique("vthree").replace("-", "")[:12])
    data = names.s3_uri(ctx.bucket, names.data_prefix("Lima_PE")) + "/train"
    clients.s3.put_object(Bucket=ctx.bucket, Key=names.data_prefix("Lima_PE") + "/train/data.csv",
                          Body=b"".join(b"%d,%d,1\n" % (i * 3, i) for i in range(50)))
    job = names.v3_job_base("Lima_PE") + "-20261204191239"
    assert names.v3_job_pattern("Lima_PE").match(job) and not names.job_pattern("Lima_PE").match(job)
    clients.sagemaker.create_training_job(
        TrainingJobName=job,
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        RoleArn=ctx.role,
        HyperParameters={"num_round": "3"},
        InputDataConfig=[{"ChannelName": "train", "ContentType": "text/csv",
                          "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": data}}}],
        OutputDataConfig={"S3OutputPath": names.s3_uri(ctx.bucket, names.artifacts_prefix("Lima_PE"))},
        ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
    )
    clients.sagemaker.get_waiter("training_job_completed_or_stopped").wait(
        TrainingJobName=job, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )
    clients.s3.put_object(Bucket=ctx.bucket, Key=names.v3_prefix + "Lima_PE-sdk-v3.tar.gz", Body=model_tar())
    container = {"Image": IMAGE, "Mode": "MultiModel", "ModelDataUrl": names.s3_uri(ctx.bucket, names.v3_prefix)}
    clients.sagemaker.create_model(ModelName=names.v3_model, PrimaryContainer=container, ExecutionRoleArn=ctx.role)
    variant = {"VariantName": "AllTraffic", "ModelName": names.v3_model, "InitialInstanceCount": 1}
    variant["InstanceType"] = "ml.m5.large"
    clients.sagemaker.create_endpoint_config(EndpointConfigName=names.v3_endpoint_config, ProductionVariants=[variant])
    clients.sagemaker.create_endpoint(EndpointName=names.v3_endpoint, EndpointConfigName=names.v3_endpoint_config)
    wait_for_endpoint(clients.sagemaker, names.v3_endpoint, 0.1)

    found = inventory(clients.sagemaker, clients.s3, ctx.bucket, names, ["Lima_PE"])
    assert kinds(found) == ["S3 objects", "endpoint", "endpoint config", "model", "training job"]
    assert job in set(found["name"])
    done = delete_run(clients.sagemaker, clients.s3, ctx.bucket, names, 0.05)
    assert list(done["deleted"][:3]) == [
        f"endpoint {names.v3_endpoint}", f"endpoint config {names.v3_endpoint_config}", f"model {names.v3_model}"
    ]
    assert leftovers(clients.sagemaker, clients.s3, ctx.bucket, names).empty
    assert delete_run(clients.sagemaker, clients.s3, ctx.bucket, names, 0.05).empty
