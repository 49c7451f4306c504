"""The mode switch: AWS mode runs the SDK as it comes."""

from __future__ import annotations

import os
import subprocess
import sys

AWS_MODE_SESSIONS = """
from mme_helpers.local.loopback import install_guard
install_guard(strict=True)  # making the sessions must not reach the network
from mme_helpers import session
import sagemaker.utils
original = sagemaker.utils.validate_sagemaker_config
session._sessions("eu-west-1")
assert sagemaker.utils.validate_sagemaker_config is original, "AWS mode patched the SDK"
session._memoize_sdk_config_validation()
assert sagemaker.utils.validate_sagemaker_config is not original, "the local-mode patch did nothing"
print("ok")
"""


def test_aws_mode_leaves_the_sdk_unpatched():
    environment = {name: value for name, value in os.environ.items() if not name.startswith(("AWS_", "SAGEMAKER_"))}
    environment.update(
        AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="secret", AWS_EC2_METADATA_DISABLED="true",
        SAGEMAKER_SUPPRESS_V2_WARNING="1",
    )
    done = subprocess.run(
        [sys.executable, "-c", AWS_MODE_SESSIONS], env=environment, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("ok")
