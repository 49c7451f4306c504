"""A whole local-mode run opens no connection beyond loopback, in the notebook's process or in
the service's (which refuses any)."""

import json
import subprocess
import sys
import textwrap

FLOW = textwrap.dedent("""
    import json, os, socket, sys
    from mme_helpers.local.loopback import install_guard
    violations = []
    install_guard(violations, strict=False)

    from mme_helpers import data
    from mme_helpers.cleanup import delete_run
    from mme_helpers.invoke import predict_one_house_value
    from mme_helpers.naming import RunNames
    from mme_helpers.session import setup
    from mme_helpers.training import run_training_jobs

    ctx = setup("local")  # before importing sagemaker: its import makes a boto3 session
    import sagemaker
    from sagemaker import image_uris
    from sagemaker.multidatamodel import MultiDataModel
    from sagemaker.serializers import CSVSerializer
    from sagemaker.deserializers import JSONDeserializer
    names = RunNames("offline")
    folder = sys.argv[1]
    data.generate_dataset(["Oslo_NO"], 200, 7, folder)
    image = image_uris.retrieve(framework="xgboost", region=ctx.region, version="1.7-1")

    def launch(location):
        inputs = ctx.sagemaker_session.upload_data(path=f"{folder}/{location}", key_prefix=names.data_prefix(location))
        est = sagemaker.estimator.Estimator(image_uri=image, role=ctx.role, instance_count=1,
            instance_type="ml.m5.xlarge", output_path=names.s3_uri(ctx.bucket, names.artifacts_prefix(location)),
            base_job_name=names.job_base(location), sagemaker_session=ctx.sagemaker_session)
        est.set_hyperparameters(num_round=5, objective="reg:squarederror")
        est.fit({"train": sagemaker.inputs.TrainingInput(inputs + "/train", content_type="text/csv")}, wait=False)
        return est

    est = run_training_jobs(["Oslo_NO"], launch, 1, ctx.poll_seconds)["Oslo_NO"]
    model = est.create_model(role=ctx.role, image_uri=image)
    mme = MultiDataModel(name=names.model, model_data_prefix=names.s3_uri(ctx.bucket, names.mme_prefix),
                         model=model, sagemaker_session=ctx.sagemaker_session)
    predictor = mme.deploy(initial_instance_count=1, instance_type="ml.m5.large", endpoint_name=names.endpoint, wait=False)
    ctx.client("sagemaker").get_waiter("endpoint_in_service").wait(EndpointName=names.endpoint, WaiterConfig={"Delay": 1})
    mme.add_model(model_data_source=est.model_data, model_data_path="Oslo_NO.tar.gz")
    predictor.serializer, predictor.deserializer = CSVSerializer(), JSONDeserializer()
    sdk_price = predictor.predict([2000, 3000, 3, 2, 1, 1], target_model="Oslo_NO.tar.gz")[0]
    runtime = ctx.client("sagemaker-runtime")
    boto_price, _ = predict_one_house_value(runtime, names.endpoint, [2000, 3000, 3, 2, 1, 1], "Oslo_NO.tar.gz")
    delete_run(ctx.client("sagemaker"), ctx.client("s3"), ctx.bucket, names)
    seen_in_flow = list(violations)
    try:  # the guard does see what leaves the machine: this must be recorded
        socket.getaddrinfo("sagemaker.us-west-2.amazonaws.com", 443)
    except OSError:
        pass
    print(json.dumps({"flow": seen_in_flow, "probe": violations[len(seen_in_flow):],
                      "prices": [sdk_price, boto_price]}))
""")


def test_a_local_run_stays_on_loopback(tmp_path):
    env_home = tmp_path / "home"
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["MME_LOCAL_HOME"] = str(env_home)
    try:
        result = subprocess.run(
            [sys.executable, "-c", FLOW, str(tmp_path / "data")], capture_output=True, text=True, timeout=300, env=env
        )
        assert result.returncode == 0, result.stderr[-3000:]
        report = json.loads(result.stdout.strip().splitlines()[-1])
        assert report["flow"] == []
        assert report["probe"] == [["socket.getaddrinfo", "sagemaker.us-west-2.amazonaws.com"]]
        assert report["prices"][0] == report["prices"][1] > 0
        log = (env_home / "service.log").read_text()
        assert "refuses to reach" not in log
    finally:
        subprocess.run([sys.executable, "-m", "mme_helpers.local", "--home", str(env_home), "stop"], timeout=60)


def test_the_service_refuses_to_leave_the_machine():
    from mme_helpers.local.loopback import is_local

    assert is_local("127.0.0.1") and is_local("127.8.9.1") and is_local("::1") and is_local("localhost")
    assert not is_local("10.0.0.1") and not is_local("s3.amazonaws.com") and not is_local("8.8.8.8")
    code = (
        "from mme_helpers.local.loopback import install_guard; install_guard(); import socket\n"
        "try:\n    socket.create_connection(('192.0.2.1', 443), timeout=1)\nexcept PermissionError as e:\n    print(e)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert "refuses to reach '192.0.2.1'" in result.stdout
