"""What ``setup("local")`` gives a client (README, "How the two modes work"): the variables that point
every AWS SDK at the service, and an SDK config under which the SageMaker SDK finds its bucket
without an STS call. Run in a child process with no AWS variables, as a fresh kernel is."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from mme_helpers.local import config

SERVICES = ("S3", "SAGEMAKER", "SAGEMAKER_RUNTIME", "STS", "IAM", "CLOUDWATCH", "CLOUDWATCH_LOGS")

AFTER_SETUP = """
import json, os, warnings
import boto3
from mme_helpers.session import setup
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    ctx = setup("local")
sts_calls = []
session = boto3.Session()
session.events.register("before-call.sts", lambda model, **_: sts_calls.append(model.name))
import sagemaker
bucket = sagemaker.Session(boto_session=session).default_bucket()
print(json.dumps({
    "env": {k: v for k, v in os.environ.items() if k.startswith("AWS_") or k == "MME_LOCAL_ROLE_ARN"},
    "ctx_bucket": ctx.bucket, "bucket": bucket, "sts_calls": sts_calls,
    "warnings": [str(w.message) for w in caught],
}))
"""

IMPORT_BEFORE_SETUP = """
import warnings
import sagemaker
from mme_helpers.session import setup
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    setup("local")
print("\\n".join(str(w.message) for w in caught))
"""


def run_fresh(code: str, home) -> subprocess.CompletedProcess:
    """``code`` in a new Python with no AWS variables, its local home the test session's service."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SAGEMAKER_")) and k != config.ROLE_VARIABLE}
    env[config.HOME_VARIABLE] = str(home)
    env["SAGEMAKER_SUPPRESS_V2_WARNING"] = "1"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def test_setup_points_every_sdk_at_the_service_and_the_bucket_needs_no_sts(service, service_home):
    done = run_fresh(AFTER_SETUP, service_home)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    env = report["env"]
    assert env["AWS_ENDPOINT_URL"] == service.url  # the catch-all
    assert {name: env.get(f"AWS_ENDPOINT_URL_{name}") for name in SERVICES} == dict.fromkeys(SERVICES, service.url)
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == (service.access_key_id, service.secret_access_key)
    assert env["AWS_DEFAULT_REGION"] == env["AWS_REGION"] == service.region
    assert env["AWS_EC2_METADATA_DISABLED"] == "true"
    assert env["MME_LOCAL_ROLE_ARN"] == config.ROLE_ARN
    # the SDK config names the default bucket: the SDK asks STS for no account number to build one
    assert report["bucket"] == report["ctx_bucket"] == config.default_bucket(service.region)
    assert report["sts_calls"] == []
    assert not any("imported before setup" in warning for warning in report["warnings"])


def test_importing_sagemaker_before_setup_is_warned_about(service, service_home):
    done = run_fresh(IMPORT_BEFORE_SETUP, service_home)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "sagemaker was imported before setup('local')" in done.stdout
