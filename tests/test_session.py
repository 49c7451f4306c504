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


IPYTHON_ERROR_AFTER_SETUP = """
import sys
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance(colors="NoColor")
# as in a notebook: setup() runs in a cell, where get_ipython() exists; importing sagemaker there makes
# sagemaker_core install rich's tracebacks into the shell
shell.run_cell("from mme_helpers.session import setup; ctx = setup('local')")
shell.run_cell("raise LookupError('no completed training job for NewYork_NY in run demo: run 02_train_models first')")
"""

PYTHON_EXCEPTHOOK_AFTER_SETUP = """
import sys
from mme_helpers.session import setup
setup("local")  # outside IPython, rich replaces sys.excepthook
print(sys.excepthook is sys.__excepthook__)
"""


def test_setup_gives_errors_back_to_ipython(service):
    """A notebook's error is IPython's own traceback with the whole message on one line, not rich's
    fixed-width box of library source that cuts the message (sagemaker_core installs it on import)."""
    done = subprocess.run(
        [sys.executable, "-c", IPYTHON_ERROR_AFTER_SETUP], env=dict(os.environ), capture_output=True, text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "LookupError: no completed training job for NewYork_NY in run demo: run 02_train_models first" in done.stdout
    assert "\u256d" not in done.stdout and "Traceback (most recent call last)" in done.stdout, done.stdout[-2000:]


def test_setup_gives_errors_back_to_python(service):
    done = subprocess.run(
        [sys.executable, "-c", PYTHON_EXCEPTHOOK_AFTER_SETUP], env=dict(os.environ), capture_output=True, text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1] == "True", done.stdout


def test_setup_prints_nothing_of_the_sdk_config(service):
    """The setup cell shows the table of settings, not the SDK's INFO lines about its config files."""
    done = subprocess.run(
        [sys.executable, "-c", "from mme_helpers.session import setup; setup('local')"], env=dict(os.environ),
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "sagemaker.config" not in done.stdout + done.stderr, done.stdout + done.stderr
