"""The seed's flow written with the SageMaker Python SDK v3, as a learner's script would be.

Run by tests/test_sdk_v3.py in ``.venv-v3`` (v3 cannot share an environment with v2) with the
local service's client environment. It trains one model with ``ModelTrainer`` and the built-in
XGBoost image from v3's ``image_uris``, serves it from a multi-model endpoint made with the
``sagemaker.core`` resources, invokes it with ``target_model`` and deletes what it made. It prints
one JSON line with what the test checks: the role used, the artifact, the prediction.

Usage: python sdk_v3_flow.py --name NAME --train S3URI --validation S3URI --output S3URI
       --prefix S3URI --row CSV [--role ARN] [--xgboost-version V]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys


def main() -> int:
    parser = argparse.ArgumentParser()
    for option in ("--name", "--train", "--validation", "--output", "--prefix", "--row"):
        parser.add_argument(option, required=True)
    parser.add_argument("--role", default=None, help="execution role; none: the one the SDK resolves")
    parser.add_argument("--xgboost-version", default="1.7-1")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    # v3 logs a job's CloudWatch lines (wait(logs=True)) at INFO on sagemaker.core.resources: show them
    job_log = logging.getLogger("sagemaker.core.resources")
    job_log.setLevel(logging.INFO)
    job_log.addHandler(logging.StreamHandler(sys.stdout))
    job_log.propagate = False

    import boto3
    from sagemaker.core import image_uris
    from sagemaker.core.resources import Endpoint, EndpointConfig, Model, TrainingJob
    from sagemaker.core.shapes import ContainerDefinition, ProductionVariant
    from sagemaker.train import ModelTrainer
    from sagemaker.train.configs import Compute, InputData, OutputDataConfig, StoppingCondition

    region = boto3.Session().region_name
    image = image_uris.retrieve(framework="xgboost", region=region, version=args.xgboost_version)
    trainer = ModelTrainer(
        training_image=image,
        role=args.role,
        base_job_name=args.name,
        compute=Compute(instance_type="ml.m5.xlarge", instance_count=1, volume_size_in_gb=5),
        stopping_condition=StoppingCondition(max_runtime_in_seconds=600),
        output_data_config=OutputDataConfig(s3_output_path=args.output),
        hyperparameters={"objective": "reg:squarederror", "num_round": 20, "max_depth": 4, "eta": 0.3},
    )
    trainer.train(
        input_data_config=[
            InputData(channel_name="train", data_source=args.train, content_type="text/csv"),
            InputData(channel_name="validation", data_source=args.validation, content_type="text/csv"),
        ],
        wait=True,
        logs=True,
    )
    job = TrainingJob.get(trainer._latest_training_job.training_job_name)
    artifact = job.model_artifacts.s3_model_artifacts

    # the multi-model endpoint: a model whose container serves every artifact under a prefix
    bucket, _, key = args.prefix.removeprefix("s3://").partition("/")
    target = "model-a.tar.gz"
    source_bucket, _, source_key = artifact.removeprefix("s3://").partition("/")
    boto3.client("s3").copy_object(Bucket=bucket, Key=key + target, CopySource={"Bucket": source_bucket, "Key": source_key})
    model = Model.create(
        model_name=args.name,
        primary_container=ContainerDefinition(image=image, mode="MultiModel", model_data_url=args.prefix),
        execution_role_arn=trainer.role,  # the role ModelTrainer resolved (sagemaker.core takes no string default)
    )
    config = EndpointConfig.create(
        endpoint_config_name=args.name,
        production_variants=[
            ProductionVariant(
                variant_name="AllTraffic", model_name=model.model_name, initial_instance_count=1, instance_type="ml.m5.large"
            )
        ],
    )
    endpoint = Endpoint.create(endpoint_name=args.name, endpoint_config_name=config.endpoint_config_name)
    endpoint.wait_for_status("InService", poll=1, timeout=120)
    described = Endpoint.get(args.name)
    model_role = Model.get(args.name).execution_role_arn
    answer = endpoint.invoke(body=args.row, content_type="text/csv", target_model=target)
    prediction = json.loads(answer.body.read())

    endpoint.delete()
    endpoint.wait_for_delete(poll=1, timeout=120)
    config.delete()
    model.delete()
    print(  # on a line of its own: the SDK's waiting panel leaves the cursor at the end of its box
        "\nRESULT "
        + json.dumps(
            {
                "image": image,
                "job_role": job.role_arn,
                "job_status": job.training_job_status,
                "model_role": model_role,
                "artifact": artifact,
                "endpoint_status": described.endpoint_status,
                "prediction": prediction,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
