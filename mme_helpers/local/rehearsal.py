"""The AWS rehearsal: the notebooks' AWS-mode path (``MODE="aws"``) run against the local service.

The service runs in its AWS-like profile (``aws_like``). The kernels reach it the way a learner's
machine reaches AWS, with no ``AWS_ENDPOINT_URL*`` variable (``setup("aws")`` refuses them and goes
on refusing them): an AWS config file whose default profile has the credentials, the region and an
``endpoint_url`` (botocore reads a profile's ``endpoint_url`` for every client that is not given one,
"Service-specific endpoints", AWS SDKs and Tools reference guide). Only the SDK's own STS clients are
given one: the SDK v2 and v3 build them with ``endpoint_url=sts_regional_endpoint(region)``
(``get_execution_role`` and ``Session.default_bucket`` ask STS who the caller is), which beats every
configuration. In the rehearsal's kernels, and only there, that function answers the profile's
endpoint instead of ``https://sts.<region>.amazonaws.com``: the SDK's role and bucket resolution then
runs as it comes, against the local STS. Each kernel also refuses, and records, any connection beyond
127.0.0.1 (``loopback.install_guard``), so that whatever would still reach AWS fails loudly.

Nothing else differs from a learner's AWS run but one SDK config key, ``TelemetryOptOut: true``: the
SDK's telemetry is an HTTPS request to an AWS host that the rehearsal cannot answer (and that no
notebook shows).
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import sys
from pathlib import Path

from . import aws_like
from .config import ROLE_VARIABLE, ServiceInfo
from .private_files import write_private

FOLDER = "aws-rehearsal"  # in the service's home: the kernels' AWS config, SDK config, IPython start-up
VIOLATIONS_VARIABLE = "MME_REHEARSAL_VIOLATIONS"  # where a kernel records connections it refused
CI_METRICS_DELAY_S = 5.0  # the rehearsal's CloudWatch delay after each minute (AWS: minutes; CI: seconds)
# module -> its STS endpoint function, imported by name from sagemaker.utils / sagemaker.core.common_utils
STS_ENDPOINT_FUNCTIONS = {
    "sagemaker.session": "sts_regional_endpoint",  # SDK v2 (2.257)
    "sagemaker.core.helper.session_helper": "sts_regional_endpoint",  # SDK v3
}
# variables of the calling environment that must not reach a rehearsal kernel: every AWS_* (endpoints,
# credentials, profiles), the local-mode SDK config (its default bucket and role would skip what the
# rehearsal exercises) and the service's role
LOCAL_MODE_VARIABLES = ("SAGEMAKER_USER_CONFIG_OVERRIDE", ROLE_VARIABLE)

STARTUP_SCRIPT = """\
# The AWS rehearsal's kernel start-up (mme_helpers.local.rehearsal): written by the rehearsal, not by a learner.
from mme_helpers.local.rehearsal import prepare_kernel

prepare_kernel()
"""


class RehearsalError(RuntimeError):
    """The rehearsal cannot run as asked."""


def start_service(home: Path, metrics_delay_s: float = CI_METRICS_DELAY_S, region: str | None = None) -> ServiceInfo:
    """A fresh service in ``home`` (its state forgotten first), in the AWS-like profile."""
    from .config import DEFAULT_REGION
    from .lifecycle import health, reset, start

    reset(home)
    settings = {aws_like.VARIABLE: "1", aws_like.DELAY_VARIABLE: str(metrics_delay_s)}
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)  # the service inherits them (lifecycle.service_environment)
    try:
        info, _ = start(home, region=region or DEFAULT_REGION)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    answer = health(info) or {}
    if answer.get("profile") != "aws-like":
        raise RehearsalError(f"the service in {home} is not in its AWS-like profile: {answer}")
    return info


def kernel_environment(info: ServiceInfo, home: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a rehearsal kernel: ``base`` (default: this process's) without any AWS or
    local-mode variable, plus an AWS config file that reaches the service, the telemetry opt-out and
    the IPython start-up that prepares the kernel (``prepare_kernel``)."""
    folder = home / FOLDER
    startup = folder / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / "00-aws-rehearsal.py").write_text(STARTUP_SCRIPT)
    write_private(
        folder / "aws-config",
        "[default]\n"
        f"region = {info.region}\n"
        f"endpoint_url = {info.url}\n"
        f"aws_access_key_id = {info.access_key_id}\n"
        f"aws_secret_access_key = {info.secret_access_key}\n",
    )
    write_private(folder / "aws-credentials", "")  # not the machine's own ~/.aws/credentials
    (folder / "sagemaker-config.yaml").write_text(
        "SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n"
    )
    violations = folder / "violations.txt"
    violations.write_text("")
    base = dict(os.environ if base is None else base)
    environment = {
        name: value for name, value in base.items() if not name.startswith("AWS_") and name not in LOCAL_MODE_VARIABLES
    }
    environment.update(
        AWS_CONFIG_FILE=str(folder / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(folder / "aws-credentials"),
        SAGEMAKER_USER_CONFIG_OVERRIDE=str(folder / "sagemaker-config.yaml"),
        IPYTHONDIR=str(folder / "ipython"),
        MME_LOCAL_HOME=str(home),  # nothing in AWS mode uses it: no other home is touched by mistake
        **{VIOLATIONS_VARIABLE: str(violations)},
    )
    return environment


def violations(home: Path) -> list[str]:
    """Connections beyond 127.0.0.1 that rehearsal kernels tried (and were refused)."""
    path = home / FOLDER / "violations.txt"
    return path.read_text().splitlines() if path.exists() else []


class _RecordedViolations(list):
    """The guard's list of refused connections, each also written to the rehearsal's file."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def append(self, item) -> None:
        super().append(item)
        with contextlib.suppress(OSError), open(self.path, "a") as file:
            file.write(f"{os.getpid()} {item[0]} {item[1]}\n")


def profile_endpoint() -> str:
    """The ``endpoint_url`` of the AWS config's profile: where this kernel's clients go."""
    import botocore.session

    url = botocore.session.Session().get_scoped_config().get("endpoint_url")
    if not url:
        raise RehearsalError("the rehearsal's AWS config has no endpoint_url")
    return url


def _local_sts_endpoint(region: str) -> str:
    """The rehearsal's stand-in for ``sts_regional_endpoint``: the local STS for every region."""
    return profile_endpoint()


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Replaces the STS endpoint function in the SDK's session modules as they are imported (not
    before: importing the SDK early would change what a notebook's first cell prints)."""

    def find_spec(self, name, path=None, target=None):
        if name not in STS_ENDPOINT_FUNCTIONS:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        execute = loader.exec_module

        def exec_module(module) -> None:
            execute(module)
            setattr(module, STS_ENDPOINT_FUNCTIONS[name], _local_sts_endpoint)

        loader.exec_module = exec_module
        return spec


def prepare_kernel() -> None:
    """In a rehearsal kernel (its IPython start-up): refuse and record connections beyond 127.0.0.1,
    and send the SDK's STS clients to the profile's endpoint."""
    from .loopback import install_guard

    path = os.environ.get(VIOLATIONS_VARIABLE)
    install_guard(violations=_RecordedViolations(path) if path else None, strict=True)
    for name, function in STS_ENDPOINT_FUNCTIONS.items():
        module = sys.modules.get(name)
        if module is not None:
            setattr(module, function, _local_sts_endpoint)
    if not any(isinstance(finder, _PatchOnImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())
