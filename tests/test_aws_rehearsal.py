"""The AWS rehearsal: the notebooks' AWS-mode path against the local service in its AWS-like profile.

The fast tests check each AWS-like behaviour and the way a rehearsal kernel reaches the service; the
notebook rehearsal itself (``test_the_notebooks_aws_mode_path``) runs the notebooks with papermill.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from mme_helpers.local import aws_like, lifecycle, rehearsal
from mme_helpers.local.config import ACCOUNT_ID, ROLE_ARN
from mme_helpers.local.metrics import MetricsPublisher

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def aws_like_service(tmp_path_factory):
    """A service in the AWS-like profile, in a home of its own, and a rehearsal kernel's environment."""
    home = tmp_path_factory.mktemp("aws-like-service")
    info = rehearsal.start_service(home, metrics_delay_s=1.0)
    yield SimpleNamespace(info=info, home=home, environment=rehearsal.kernel_environment(info, home))
    lifecycle.stop(home)


def in_rehearsal_kernel(environment: dict[str, str], code: str) -> subprocess.CompletedProcess:
    """``code`` run by IPython with the rehearsal's environment: its start-up file runs first, as in a
    rehearsal kernel."""
    return subprocess.run(
        [sys.executable, "-m", "IPython", "--no-banner", "--colors=NoColor", "-c", code],
        env=environment, capture_output=True, text=True, timeout=180, cwd=ROOT,
    )


SETUP_WITH_ROLE = f"""
import json, os
from mme_helpers.session import ModeError, setup
from mme_helpers.endpoint import loaded_models
refused = []
for variable in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"):  # a leftover from local mode
    os.environ[variable] = "http://127.0.0.1:1"
    try:
        setup("aws", role={ROLE_ARN!r})
    except ModeError as error:
        refused.append(str(error))
    del os.environ[variable]
ctx = setup("aws", role={ROLE_ARN!r})
print(json.dumps({{"role": ctx.role, "bucket": ctx.bucket, "region": ctx.region, "period": ctx.metric_period,
                  "poll": ctx.poll_seconds,
                  "url": ctx.service_url, "loaded": loaded_models("any-endpoint").attrs["summary"], "refused": refused}}))
"""


def test_a_rehearsal_kernel_runs_setup_aws_as_it_comes(aws_like_service):
    """setup("aws") in a rehearsal kernel: no AWS_ENDPOINT_URL* variable, the SDK's default bucket
    derived from the account STS names (the SDK's own STS client, sent to the local STS), CloudWatch
    periods of a minute, and loaded_models' AWS answer; nothing tried to leave 127.0.0.1. The guard
    stays: with an AWS_ENDPOINT_URL* variable set, setup("aws") refuses to run."""
    environment = aws_like_service.environment
    assert not [name for name in environment if name.startswith("AWS_ENDPOINT_URL")]
    done = in_rehearsal_kernel(environment, SETUP_WITH_ROLE)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer == {
        "role": ROLE_ARN,
        "bucket": f"sagemaker-{aws_like_service.info.region}-{ACCOUNT_ID}",
        "region": aws_like_service.info.region,
        "period": 60,
        "poll": 30.0,
        "url": None,
        "loaded": "AWS shows no per-model state; see the endpoint's CloudWatch metrics",
        "refused": [
            f"MODE='aws' but {variable} point(s) the SDK elsewhere (left from local mode?); unset them or restart the kernel"
            for variable in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME")
        ],
    }
    assert rehearsal.violations(aws_like_service.home) == []


def test_setup_aws_without_a_role_shows_the_sdks_answer_for_a_user_identity(aws_like_service):
    """No ROLE: get_execution_role asks STS who calls; a user is not a role, and setup says what to do,
    in IPython's own traceback (the message whole, the SDK's reason under it), not rich's box."""
    code = "from mme_helpers.session import setup\nsetup('aws')"
    done = in_rehearsal_kernel(aws_like_service.environment, code)
    assert "ModeError: MODE='aws' outside SageMaker needs ROLE" in done.stdout
    assert (
        f"The current AWS identity is not a role: arn:aws:sts::{ACCOUNT_ID}:user/moto, therefore it cannot be used "
        "as a SageMaker execution role" in done.stdout
    )


def test_without_the_rehearsals_sts_endpoint_the_sdk_would_reach_aws_and_is_refused(aws_like_service):
    """The SDK's STS clients go to the regional AWS host whatever the config says: the rehearsal's
    kernels refuse that connection and record it (an escape fails loudly)."""
    code = (
        "import sagemaker.session, sagemaker.utils\n"
        "sagemaker.session.sts_regional_endpoint = sagemaker.utils.sts_regional_endpoint  # undo the rehearsal's\n"
        "from mme_helpers.session import setup\n"
        f"setup('aws', role={ROLE_ARN!r})"
    )
    environment = {**aws_like_service.environment}
    record = aws_like_service.home / "escape.txt"
    environment[rehearsal.VIOLATIONS_VARIABLE] = str(record)
    done = in_rehearsal_kernel(environment, code)
    assert "NonLocalConnection" in done.stdout
    assert f"sts.{aws_like_service.info.region}.amazonaws.com" in record.read_text()


def test_the_aws_like_service_shows_no_per_model_state(aws_like_service):
    """/_local/endpoints/<name>/models is a path AWS does not have: 404 UnknownOperationException; the
    service's health check still answers (start and status need it) and names the profile."""
    from mme_helpers.local import signed_get

    info = aws_like_service.info
    status, answer = signed_get(
        info.url, "/_local/endpoints/demo/models", info.access_key_id, info.secret_access_key, info.region
    )
    assert (status, answer["__type"]) == (404, "UnknownOperationException")
    assert lifecycle.health(info)["profile"] == "aws-like"


def test_the_aws_like_cloudwatch_rounds_a_start_time_down_to_its_minute(aws_like_service):
    """A minute's datapoint is stamped with the minute's start; a query that starts later in that
    minute still gets it, as on AWS (GetMetricStatistics rounds StartTime down)."""
    import boto3

    info = aws_like_service.info
    cloudwatch = boto3.client(
        "cloudwatch", endpoint_url=info.url, region_name=info.region,
        aws_access_key_id=info.access_key_id, aws_secret_access_key=info.secret_access_key,
    )  # fmt: skip
    minute = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(minutes=2)
    dimensions = [{"Name": "EndpointName", "Value": "rounding"}]
    cloudwatch.put_metric_data(
        Namespace="AWS/SageMaker",
        MetricData=[{"MetricName": "Invocations", "Dimensions": dimensions, "Timestamp": minute, "Value": 3}],
    )
    points = cloudwatch.get_metric_statistics(
        Namespace="AWS/SageMaker", MetricName="Invocations", Dimensions=dimensions, Period=60,
        StartTime=minute + dt.timedelta(seconds=30), EndTime=minute + dt.timedelta(minutes=2), Statistics=["Sum"],
    )["Datapoints"]  # fmt: skip
    assert [point["Sum"] for point in points] == [3.0]


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


class CloudWatchRecorder:
    def __init__(self):
        self.sent: list[dict] = []

    def put_metric_data(self, Namespace, MetricData):  # noqa: N803  (boto3's names)
        self.sent += [{**item, "Namespace": Namespace} for item in MetricData]


def test_aws_like_metrics_arrive_per_minute_after_the_minute_and_the_delay(monkeypatch):
    """Two requests in one minute are one datapoint (SampleCount 2) stamped with the minute's start,
    sent only once the minute has ended plus the delay; the LoadedModelCount gauge, read every
    interval, is one statistic set for the minute too."""
    start = 60.0 * 16_667  # a minute's start
    clock = Clock(start + 20)
    monkeypatch.setattr("mme_helpers.local.metrics.time.time", clock)
    cloudwatch = CloudWatchRecorder()
    publisher = MetricsPublisher(SimpleNamespace(cloudwatch=cloudwatch), period_s=60, delay_s=5)
    record = publisher.recorder("demo", "AllTraffic")
    loaded = [3.0]
    publisher.add_gauge("demo", "AllTraffic", "LoadedModelCount", lambda: list(loaded))
    record("Invocations", 1, "None")
    publisher.flush()
    clock.now = start + 50
    record("Invocations", 1, "None")
    loaded[0] = 5.0
    publisher.flush()
    clock.now = start + 64  # the minute has ended, the delay not yet
    publisher.flush()
    assert cloudwatch.sent == []
    clock.now = start + 65
    publisher.flush()
    sent = {item["MetricName"]: item for item in cloudwatch.sent}
    assert sent["Invocations"]["Timestamp"] == start
    assert sent["Invocations"]["StatisticValues"] == {"SampleCount": 2, "Sum": 2, "Minimum": 1, "Maximum": 1}
    assert sent["LoadedModelCount"]["Namespace"] == "/aws/sagemaker/Endpoints"
    assert sent["LoadedModelCount"]["Timestamp"] == start
    assert sent["LoadedModelCount"]["StatisticValues"] == {"SampleCount": 2, "Sum": 8.0, "Minimum": 3.0, "Maximum": 5.0}


def test_local_metrics_still_arrive_within_the_second(monkeypatch):
    """Local mode's profile is unchanged: each flush sends what was recorded, stamped now."""
    clock = Clock(2_000_000.5)
    monkeypatch.setattr("mme_helpers.local.metrics.time.time", clock)
    cloudwatch = CloudWatchRecorder()
    publisher = MetricsPublisher(SimpleNamespace(cloudwatch=cloudwatch))
    publisher.recorder("demo", "AllTraffic")("Invocations", 1, "None")
    publisher.flush()
    assert [(item["MetricName"], item["Timestamp"]) for item in cloudwatch.sent] == [("Invocations", clock.now)]


def _provision(honour_overrides: bool, tmp_path: Path):
    from mme_helpers.local.runtime.hosting import Hosting

    hosting = Hosting(
        SimpleNamespace(s3=None), tmp_path, "us-west-2", MetricsPublisher(SimpleNamespace()), lambda: None,
        honour_overrides=honour_overrides,
    )  # fmt: skip
    container = {
        "Image": "246618743249.dkr.ecr.us-west-2.amazonaws.com/sagemaker-xgboost:3.0-5",
        "Mode": "MultiModel",
        "ModelDataUrl": "s3://bucket/models/",
        "Environment": {"MME_LOCAL_MEMORY_BUDGET_MB": "1.5", "MME_LOCAL_WORKER_MB": "0"},
    }
    variant = {"VariantName": "AllTraffic", "ModelName": "m", "InstanceType": "ml.m5.xlarge", "InitialInstanceCount": 1}
    config = SimpleNamespace(request={"ProductionVariants": [variant]})
    runtime = hosting.provision(SimpleNamespace(name="e"), config, {"m": SimpleNamespace(containers=[container])})
    hosting.executor.shutdown()
    return runtime.instances[0].config


def test_the_aws_like_service_ignores_the_local_memory_override(tmp_path):
    """AWS's container never reads MME_LOCAL_*: an ml.m5.xlarge holds what its memory holds, each loaded
    model charged a model-server worker; local mode honours the override (04's eviction demo)."""
    from mme_helpers.sagemaker_hosting import model_memory_budget, model_server_worker_bytes

    aws = _provision(False, tmp_path / "aws")
    assert (aws.memory_budget, aws.worker_bytes) == (model_memory_budget("ml.m5.xlarge"), model_server_worker_bytes("3.0-5"))
    local = _provision(True, tmp_path / "local")
    assert (local.memory_budget, local.worker_bytes) == (1_500_000, 0)  # decimal MB


def test_the_profile_is_read_from_the_environment():
    assert aws_like.from_environment({}) == aws_like.Profile()
    assert aws_like.from_environment({aws_like.VARIABLE: "1", aws_like.DELAY_VARIABLE: "5"}) == aws_like.Profile(
        aws_like=True, metrics_period_s=60, metrics_delay_s=5.0
    )


def test_a_rehearsal_kernel_gets_no_aws_or_local_mode_variable(tmp_path):
    """Whatever the calling shell holds (local mode's variables, a real AWS profile), a rehearsal
    kernel sees only the rehearsal's AWS config."""
    from mme_helpers.local.config import ServiceInfo

    info = ServiceInfo(1, 4321, "us-west-2", "LKIAEXAMPLE", "secret", 0.0, str(tmp_path))
    base = {"AWS_PROFILE": "prod", "AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ACCESS_KEY_ID": "AKIA",
            "SAGEMAKER_USER_CONFIG_OVERRIDE": "/x.yaml", "MME_LOCAL_ROLE_ARN": ROLE_ARN, "PATH": "/usr/bin"}  # fmt: skip
    environment = rehearsal.kernel_environment(info, tmp_path, base)
    aws_variables = sorted(name for name in environment if name.startswith("AWS_"))
    assert aws_variables == ["AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"]
    assert environment["PATH"] == "/usr/bin" and "MME_LOCAL_ROLE_ARN" not in environment
    config = Path(environment["AWS_CONFIG_FILE"])
    assert "endpoint_url = http://127.0.0.1:4321" in config.read_text()
    assert oct(config.stat().st_mode & 0o777) == "0o600"  # it holds the service's secret key
    assert "TelemetryOptOut: true" in Path(environment["SAGEMAKER_USER_CONFIG_OVERRIDE"]).read_text()
    assert os.environ.get("AWS_CONFIG_FILE") != environment["AWS_CONFIG_FILE"]  # the caller's own is untouched


# ---------------------------------------------------------------------------------------------------------------
# The notebooks' AWS-mode path: `make rehearse-aws` (about 9 minutes on two busy cores; too long for `make test`)

REHEARSE_NOTEBOOKS = os.environ.get("MME_REHEARSE_AWS") == "1"
REHEARSAL_RUN = "aws-rehearsal"
# short but whole: fewer houses, 08's workshop setting with fewer towns (nc's parameter names)
REHEARSAL_PARAMETERS = {
    "NUM_HOUSES_PER_LOCATION": 300,
    "NUM_MODELS": 60,
    "REQUESTS": 300,
    "INSTANCE_TYPES": ["ml.m5.large", "ml.m5.xlarge"],
}


def notebook_text(path: Path) -> str:
    """Everything a learner reads in an executed notebook's outputs, as text."""
    texts = []
    for cell in json.loads(path.read_text())["cells"]:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                texts.append("".join(output["text"]))
            elif output.get("output_type") == "error":
                texts.append(f"ERROR {output['ename']}: {output['evalue']}")
            else:
                texts.append("".join(output.get("data", {}).get("text/plain", "")))
    return "\n".join(texts)


def samples(cloudwatch, endpoint: str, metric: str, since: dt.datetime) -> int:
    """How many values CloudWatch holds for an endpoint's metric since ``since``."""
    points = cloudwatch.get_metric_statistics(
        Namespace="AWS/SageMaker", MetricName=metric, Period=86_400, Statistics=["SampleCount"],
        Dimensions=[{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": "AllTraffic"}],
        StartTime=since, EndTime=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5),
    )["Datapoints"]  # fmt: skip
    return int(sum(point["SampleCount"] for point in points))


def aws_message_problems(executed: dict[str, str], region: str, unloads: int) -> list[str]:
    """What the rehearsal's notebooks print about AWS, checked against what is true (every problem at
    once, so that each notebook's author sees theirs): ``executed`` maps a notebook's number to its
    outputs' text, ``unloads`` is CloudWatch's count of evictions on 03's endpoint over the run."""
    problems = []

    def expect(condition: object, number: str, what: str) -> None:
        if not condition:
            problems.append(f"{number}: {what}")

    for number, text in executed.items():
        if "AWS APIs answered by" in text:  # setup's table: role and bucket resolved, and who answers
            expect(re.search(r"^mode\s+aws$", text, re.MULTILINE), number, "setup's table does not say mode aws")
            expect(f"s3://sagemaker-{region}-{ACCOUNT_ID}" in text, number, "the default bucket is not the SDK's")
            expect("AWS (regional endpoints)" in text, number, "setup's table does not say AWS answers")
        expect("the local service at" not in text, number, "says the local service answers")
        expect("ERROR " not in text, number, "an error output")
        # loaded_models' local summary ("N models in memory, using ...") is a state AWS does not show
        expect("models in memory, using" not in text, number, "shows per-model state")
    if "05" in executed:
        text = executed["05"]
        expect("per-model state: not available (AWS shows none)" in text, "05", "per-model state not said absent")
        # capacity as on AWS (03's MME_LOCAL_* override ignored): the demo's prediction is what the endpoint did
        predicted = [int(n) for n in re.findall(r"the simulation predicts (\d+) evictions", text)]
        expect(predicted == [unloads], "05", f"predicts {predicted} evictions; CloudWatch counted {unloads} unloads")
    if "06" in executed:
        text = executed["06"]
        sent = re.search(r"sent: (\d+) requests", text)
        invocations = re.search(r"Invocations: sum (\d+)", text)
        expect(
            sent and invocations and sent[1] == invocations[1],
            "06",
            f"{sent and sent[0]} but {invocations and invocations[0]} (AWS rounds StartTime down to the minute)",
        )
    if "08" in executed:
        text = executed["08"]
        expect(re.search(r"trained (as|on) this machine", text), "08", "AWS mode does not train on this machine")
        expect("AWS shows no per-model state" in text, "08", "per-model check not said impossible on AWS")
    if "09" in executed:
        expect("AWS shows no per-model state" in executed["09"], "09", "per-instance models not said hidden on AWS")
    clean = f"clean: no endpoint, endpoint configuration, model or S3 object of run '{REHEARSAL_RUN}' is left"
    expect(clean in executed.get("11", ""), "11", "the clean-up does not say it left nothing")
    return problems


@pytest.mark.timeout(1800)
@pytest.mark.skipif(not REHEARSE_NOTEBOOKS, reason="the notebooks' AWS rehearsal runs in `make rehearse-aws`")
def test_the_notebooks_aws_mode_path(tmp_path):
    """Every notebook in order with MODE="aws", against the AWS-like service: each runs to its end, no
    kernel tries to reach beyond 127.0.0.1, and what the notebooks print about AWS reads true."""
    import boto3

    from mme_helpers import suite
    from mme_helpers.naming import RunNames

    names = RunNames(REHEARSAL_RUN)
    shutil.rmtree(ROOT / "runs" / REHEARSAL_RUN, ignore_errors=True)  # no executed copy from an earlier rehearsal
    started = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    home = tmp_path / "aws-rehearsal"
    with suite.aws_rehearsal(home, metrics_delay_s=rehearsal.CI_METRICS_DELAY_S) as info:
        status = suite.run("aws", REHEARSAL_RUN, ROLE_ARN, REHEARSAL_PARAMETERS, False, [])
        client = {
            "endpoint_url": info.url, "region_name": info.region,
            "aws_access_key_id": info.access_key_id, "aws_secret_access_key": info.secret_access_key,
        }  # fmt: skip
        cloudwatch, sagemaker, s3 = (boto3.client(name, **client) for name in ("cloudwatch", "sagemaker", "s3"))
        unloads = samples(cloudwatch, names.endpoint, "ModelUnloadingTime", started)
        left = {
            "endpoints": [e["EndpointName"] for e in sagemaker.list_endpoints(NameContains=REHEARSAL_RUN)["Endpoints"]],
            "models": [m["ModelName"] for m in sagemaker.list_models(NameContains=REHEARSAL_RUN)["Models"]],
            "objects": s3.list_objects_v2(Bucket=f"sagemaker-{info.region}-{ACCOUNT_ID}", Prefix=names.s3_prefix)[
                "KeyCount"
            ],
        }
    assert status == 0, "a notebook failed: see the executed copy in runs/aws-rehearsal/"
    assert rehearsal.violations(home) == []
    executed = {path.name[:2]: notebook_text(path) for path in sorted((ROOT / "runs" / REHEARSAL_RUN).glob("*.ipynb"))}
    assert set(executed) >= {"01", "02", "03", "04", "11"}

    assert aws_message_problems(executed, info.region, unloads) == []
    assert left == {"endpoints": [], "models": [], "objects": 0}  # and so it is


def test_start_behave_as_aws_from_the_command_line(tmp_path):
    """``start --behave-as-aws`` starts the AWS-like profile (``status`` names it); it refuses to call
    a service already running in local mode's profile AWS-like."""
    home = tmp_path / "cli-home"

    def local(*arguments: str) -> subprocess.CompletedProcess:
        environment = {k: v for k, v in os.environ.items() if k not in (aws_like.VARIABLE, aws_like.DELAY_VARIABLE)}
        return subprocess.run(
            [sys.executable, "-m", "mme_helpers.local", "--home", str(home), *arguments],
            env=environment, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    try:
        assert local("start").returncode == 0
        refused = local("start", "--behave-as-aws")
        assert refused.returncode == 2 and "is in local mode's profile: stop it first" in refused.stderr
        assert local("stop").returncode == 0
        assert local("start", "--behave-as-aws").returncode == 0
        assert "profile: aws-like" in local("status").stdout
    finally:
        local("stop")


def test_the_rehearsal_never_takes_local_modes_home(monkeypatch, tmp_path):
    """A rehearsal starts by forgetting its home's state: it is a folder of its own inside local mode's
    home (``$MME_LOCAL_HOME`` included), so that local mode's buckets, jobs and endpoints survive it."""
    from mme_helpers import suite

    monkeypatch.setenv("MME_LOCAL_HOME", str(tmp_path / "my-local-home"))
    assert suite.rehearsal_home() == (tmp_path / "my-local-home" / "aws-rehearsal").resolve()
