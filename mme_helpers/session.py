"""The mode switch: the one call at the top of every notebook.

``local`` starts (or finds) the local AWS service and points botocore and the SageMaker SDK at it
through the standard environment variables; ``aws`` changes nothing. Everything after this call
is the same code in both modes.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from dataclasses import dataclass
from typing import Any

MODES = ("local", "aws")


class ModeError(ValueError):
    """A mode or its settings that cannot work."""


@dataclass
class Context:
    """What a notebook needs after setup: sessions, role, bucket, and how patiently to poll."""

    mode: str
    region: str
    role: str
    bucket: str
    boto_session: Any
    sagemaker_session: Any
    poll_seconds: float
    service_url: str | None = None
    metric_period: int = 60  # the finest CloudWatch period worth asking for: AWS publishes per minute

    def client(self, name: str):
        return self.boto_session.client(name)

    def describe(self):
        """What this notebook talks to, one line each (a table a learner can read in full)."""
        import pandas as pd

        return pd.Series(
            {
                "mode": self.mode,
                "region": self.region,
                "execution role": self.role,
                "default bucket": f"s3://{self.bucket}",
                "AWS APIs answered by": (
                    f"the local service at {self.service_url}" if self.service_url else "AWS (regional endpoints)"
                ),
            },
            name="setting",
        ).to_frame()


def setup(mode: str = "local", role: str | None = None, region: str | None = None, sdk: str = "v2") -> Context:
    """Prepare the session for ``mode``; in local mode the local service is started if needed.
    ``sdk="v3"``: in the SDK v3 kernel, which has no v2 SDK (``session_v3``)."""
    if sdk not in ("v2", "v3"):
        raise ModeError(f"sdk must be 'v2' or 'v3', got {sdk!r}")
    if sdk == "v3":
        from .session_v3 import setup_v3

        return setup_v3(mode, role, region)
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    warnings.filterwarnings("ignore", message=".*pkg_resources.*")
    if mode not in MODES:
        raise ModeError(f"MODE must be one of {MODES}, got {mode!r}")
    _readable_tables()
    _quiet_sdk()  # before anything imports sagemaker: its import logs where it looked for config files
    try:
        return _local(region) if mode == "local" else _aws(role, region)
    finally:
        _plain_tracebacks()  # also when setup fails (AWS mode without ROLE): its own error is shown whole


def _plain_tracebacks() -> None:
    """Errors as Python and IPython show them. Importing ``sagemaker`` makes ``sagemaker_core`` call
    ``rich.traceback.install``: in IPython it replaces the shell's ``showtraceback``, ``_showtraceback``
    and ``showsyntaxerror`` on the instance, elsewhere ``sys.excepthook``. Rich draws every error as a
    fixed-width box of library source and cuts long messages (a hint such as "run 02_train_models
    first" wraps off-screen); undoing it lets the class's own methods answer again."""
    if getattr(sys.excepthook, "__module__", None) == "rich.traceback":
        sys.excepthook = sys.__excepthook__
    shell = _ipython_shell()
    if shell is None:
        return
    for name in ("showtraceback", "_showtraceback", "showsyntaxerror"):
        patched = vars(shell).get(name)
        if getattr(patched, "__module__", None) == "rich.traceback":
            delattr(shell, name)


def _ipython_shell():
    ipython = sys.modules.get("IPython")
    return ipython.get_ipython() if ipython is not None else None


def _readable_tables() -> None:
    """Tables show S3 URIs, ARNs and messages in full: a cut-off key teaches nothing."""
    import pandas as pd

    pd.set_option("display.max_colwidth", None)
    pd.set_option("display.width", 250)


def _local(region: str | None) -> Context:
    if "sagemaker" in sys.modules and "AWS_ENDPOINT_URL" not in os.environ:
        warnings.warn(
            "sagemaker was imported before setup('local'): its import creates a boto3 session, which may "
            "have looked for AWS credentials on the network. Call setup() first.",
            stacklevel=3,
        )
    info = point_at_local_service(region)
    _memoize_sdk_config_validation()  # local mode only: AWS mode runs the SDK as it comes
    return local_context(info, _sessions)


def _aws(role: str | None, region: str | None) -> Context:
    def execution_role(sagemaker_session) -> str:
        from sagemaker import get_execution_role

        return get_execution_role(sagemaker_session)

    return aws_context(role, region, _sessions, execution_role)


def point_at_local_service(region: str | None, python: str | None = None):
    """Find or start the local service (with ``python``, else this interpreter) and point the
    standard variables at it; returns its ``ServiceInfo``. Shared by the v2 and v3 setups."""
    from .local import DEFAULT_REGION, clear_variables, client_environment, default_home, start

    home = default_home()
    info, _ = start(home, region=region or DEFAULT_REGION, **({"python": python} if python else {}))
    for name in clear_variables():
        os.environ.pop(name, None)
    os.environ.update(client_environment(info, home))
    return info


def local_context(info, sessions) -> Context:
    """Local mode's context; ``sessions(region)`` makes the SDK's (v2 or v3) boto3 and SageMaker sessions."""
    from .local import ROLE_ARN

    boto_session, sagemaker_session = sessions(info.region)
    return Context(
        mode="local",
        region=info.region,
        role=ROLE_ARN,  # the role the SDK config names as the default execution role (README)
        bucket=sagemaker_session.default_bucket(),
        boto_session=boto_session,
        sagemaker_session=sagemaker_session,
        poll_seconds=1.0,
        service_url=info.url,
        metric_period=1,
    )


def aws_context(role: str | None, region: str | None, sessions, execution_role) -> Context:
    """AWS mode changes nothing, and refuses variables that would point the SDK elsewhere."""
    leftovers = [name for name in os.environ if name.startswith("AWS_ENDPOINT_URL")]
    if leftovers:
        raise ModeError(
            f"MODE='aws' but {', '.join(sorted(leftovers))} point(s) the SDK elsewhere "
            "(left from local mode?); unset them or restart the kernel"
        )
    boto_session, sagemaker_session = sessions(region)
    if not role:
        try:
            role = execution_role(sagemaker_session)
        except ValueError as exc:
            raise ModeError(
                "MODE='aws' outside SageMaker needs ROLE: the ARN of an IAM role SageMaker can assume "
                "(with S3 access to the bucket)"
            ) from exc
    return Context(
        mode="aws",
        region=boto_session.region_name,
        role=role,
        bucket=sagemaker_session.default_bucket(),
        boto_session=boto_session,
        sagemaker_session=sagemaker_session,
        poll_seconds=30.0,
    )


def _quiet_sdk() -> None:
    """Drop the SDK's INFO lines (its config, telemetry, "Creating training-job with name ..."):
    the notebooks show what they create in tables."""
    for name in ("sagemaker", "sagemaker.config", "sagemaker.telemetry", "botocore.configprovider", "botocore.credentials"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _memoize_sdk_config_validation() -> None:
    """Local mode: the SDK re-validates its config file against a JSON schema on every lookup (~0.17 s, ten
    lookups per ``fit``). Validation of the same config always gives the same answer: remember it."""
    import sagemaker.utils

    validate = sagemaker.utils.validate_sagemaker_config
    if getattr(validate, "memoized", False):
        return
    valid: set[str] = set()

    def memoized(config=None):
        key = json.dumps(config, sort_keys=True, default=str)
        if key not in valid:
            validate(config)
            valid.add(key)

    memoized.memoized = True
    sagemaker.utils.validate_sagemaker_config = memoized


def _sessions(region: str | None):
    _quiet_sdk()
    import boto3
    import sagemaker

    boto_session = boto3.Session(region_name=region) if region else boto3.Session()
    if not boto_session.region_name:
        raise ModeError("no AWS region configured: set AWS_DEFAULT_REGION or pass REGION")
    return boto_session, sagemaker.Session(boto_session=boto_session)
