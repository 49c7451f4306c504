"""``setup(MODE, sdk="v3")``: the mode switch in the SDK v3 kernel (.venv-v3: no v2 SDK, no moto, no XGBoost).
Local mode finds the service, or starts it with the project's main interpreter; AWS mode changes nothing
and refuses endpoint variables left from local mode; v3's waits print plain lines, not panels."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import unique

from mme_helpers.local import config, lifecycle
from mme_helpers.session import ModeError, setup

ROOT = Path(__file__).resolve().parents[1]
V3_PYTHON = ROOT / ".venv-v3" / "bin" / "python"
IMAGE = "246618743249.dkr.ecr.us-west-2.amazonaws.com/sagemaker-xgboost:3.0-5"


def fresh_kernel_environment(home: Path) -> dict[str, str]:
    """What a newly started kernel has: the service's home, none of the client variables setup sets."""
    if not V3_PYTHON.exists():
        pytest.fail(f"{V3_PYTHON} is missing: run `make venv` (it makes the SDK v3 environment .venv-v3)")
    set_by_setup = ("SAGEMAKER_USER_CONFIG_OVERRIDE", "SAGEMAKER_SUPPRESS_V2_WARNING", config.ROLE_VARIABLE)
    environment = {k: v for k, v in os.environ.items() if k not in set_by_setup and not k.startswith("AWS_")}
    environment.pop("PYTHONPATH", None)
    environment[config.HOME_VARIABLE] = str(home)
    return environment


def run_v3(code: str, home: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(V3_PYTHON), "-c", code], env=fresh_kernel_environment(home), capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


SETUP = 'from mme_helpers.session import setup\nctx = setup("local", sdk="v3")\n'


def test_local_mode_in_the_v3_kernel_finds_the_running_service(service, service_home):
    result = run_v3(
        SETUP
        + "import json, os\n"
        + "ctx.client('s3').head_bucket(Bucket=ctx.bucket)\n"
        + "print(json.dumps({'role': ctx.role, 'bucket': ctx.bucket, 'url': ctx.service_url, "
        + "'endpoint': os.environ['AWS_ENDPOINT_URL'], 'config': os.environ['SAGEMAKER_USER_CONFIG_OVERRIDE']}))",
        service_home,
    )
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found == {
        "role": config.ROLE_ARN,
        "bucket": config.default_bucket(service.region),
        "url": service.url,
        "endpoint": service.url,
        "config": str(service_home / config.SDK_CONFIG_FILE),
    }


def test_local_mode_in_the_v3_kernel_starts_the_service_with_the_main_environment(tmp_path):
    """The v3 environment has no moto and no XGBoost: the service it starts runs in .venv's python."""
    home = tmp_path / "home"
    try:
        result = run_v3(SETUP + "print(ctx.service_url)", home)
        info = config.ServiceInfo.load(home)
        assert info is not None and result.stdout.strip().endswith(info.url)
        assert lifecycle.running_service(home) == info
        command = Path(f"/proc/{info.pid}/cmdline").read_bytes().split(b"\0")
        assert command[0].decode() == str(ROOT / ".venv" / "bin" / "python")
    finally:
        lifecycle.stop(home)


def test_aws_mode_with_sdk_v3_refuses_endpoint_variables_left_from_local_mode(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", "http://127.0.0.1:1")
    with pytest.raises(ModeError, match="AWS_ENDPOINT_URL_SAGEMAKER"):
        setup("aws", sdk="v3")


def test_an_unknown_sdk_is_refused():
    with pytest.raises(ModeError, match="sdk must be"):
        setup("local", sdk="v4")


def test_v3_waits_print_plain_lines_not_panels(ctx, clients, service_home):
    """v3 waits in a rich "Wait Log Panel"; wait_for_delete's is not transient, so its last frame would
    stay in the output as a box. After setup the waits draw nothing and report in plain lines."""
    name = unique("plain")
    container = {"Image": IMAGE, "Mode": "MultiModel", "ModelDataUrl": f"s3://{ctx.bucket}/{name}/"}
    clients.sagemaker.create_model(ModelName=name, PrimaryContainer=container, ExecutionRoleArn=ctx.role)
    variant = {"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
    clients.sagemaker.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant])
    clients.sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)
    try:
        result = run_v3(
            SETUP
            + "from sagemaker.core.resources import Endpoint\n"
            + f"endpoint = Endpoint.get({name!r})\n"
            + "endpoint.wait_for_status('InService', poll=1, timeout=60)\n"
            + "endpoint.delete()\n"
            + "endpoint.wait_for_delete(poll=1, timeout=60)\n",
            service_home,
        )
    finally:
        clients.sagemaker.delete_endpoint_config(EndpointConfigName=name)
        clients.sagemaker.delete_model(ModelName=name)
    assert result.stdout.splitlines() == [
        "Final Resource Status: InService",
        f"Deleting Endpoint - {name}",
        "Resource was not found. It may have been deleted.",
    ]
    assert "ipywidgets" not in result.stderr
