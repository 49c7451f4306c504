"""The mode switch in the SageMaker SDK v3 kernel: ``setup(MODE, sdk="v3")``.

v3 cannot share an environment with v2, so its kernel (``.venv-v3``) has neither the v2 SDK nor
moto nor XGBoost. The modes mean what they mean for v2: ``local`` finds the local service (or
starts it with the project's main interpreter, which has what the service needs) and points the
clients at it through the standard environment variables; ``aws`` changes nothing.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

from .session import MODES, Context, ModeError, _readable_tables, aws_context, local_context, point_at_local_service

SERVICE_PYTHON = Path(".venv") / "bin" / "python"  # the main environment, relative to the project


def setup_v3(mode: str = "local", role: str | None = None, region: str | None = None) -> Context:
    """Prepare the session for ``mode`` without importing the v2 SDK."""
    if mode not in MODES:
        raise ModeError(f"MODE must be one of {MODES}, got {mode!r}")
    _readable_tables()
    plain_sdk_output()
    return _local(region) if mode == "local" else _aws(role, region)


def service_python() -> Path:
    """The interpreter that runs the local service: the project's main environment (moto, XGBoost)."""
    python = Path(__file__).resolve().parents[1] / SERVICE_PYTHON  # the project root
    if not python.exists():
        raise ModeError(f"the local service runs in the main environment; {python} does not exist: run `make venv`")
    return python


def _local(region: str | None) -> Context:
    if "sagemaker" in sys.modules and "AWS_ENDPOINT_URL" not in os.environ:
        warnings.warn(
            "sagemaker was imported before setup('local', sdk='v3'): its clients may have been made for AWS. "
            "Call setup() first.",
            stacklevel=3,
        )
    return local_context(point_at_local_service(region, python=str(service_python())), _sessions)


def _aws(role: str | None, region: str | None) -> Context:
    def execution_role(sagemaker_session) -> str:
        from sagemaker.core.helper.session_helper import get_execution_role

        return get_execution_role(sagemaker_session)

    return aws_context(role, region, _sessions, execution_role)


def _sessions(region: str | None):
    import boto3
    from sagemaker.core.helper.session_helper import Session

    boto_session = boto3.Session(region_name=region) if region else boto3.Session()
    if not boto_session.region_name:
        raise ModeError("no AWS region configured: set AWS_DEFAULT_REGION or pass REGION")
    return boto_session, Session(boto_session=boto_session)


class PlainLog(logging.Handler):
    """v3's messages as plain lines on stdout: its markup (``[bold]``) dropped, no colours or boxes, and
    a training job's log stream named once rather than above every line (v3 logs each CloudWatch
    event as ``<stream>:\n<line>``)."""

    def __init__(self) -> None:
        super().__init__()
        self.stream_named: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        from rich.markup import render

        message = record.getMessage()
        if getattr(record, "markup", True):
            message = render(message).plain
        stream, newline, line = message.partition("\n")
        if newline and stream.endswith(":") and " " not in stream:
            if stream == self.stream_named:
                message = line
            self.stream_named = stream
        else:
            self.stream_named = None
        print(message, file=sys.stdout, flush=True)


def plain_sdk_output() -> None:
    """What v3 shows, as text a notebook stores and a reader can read.

    v3 waits (``wait_for_status``, ``wait_for_delete``, ``TrainingJob.wait``) inside a rich ``Live``
    "Wait Log Panel": in a Jupyter kernel without ipywidgets it warns 'install "ipywidgets"', and
    ``wait_for_delete``'s panel is not transient, so its last frame stays as a box of spinner glyphs.
    A quiet, non-Jupyter rich console draws no panel anywhere. What a wait ends with ("Final Resource
    Status: InService"), what v3 creates and deletes, and a training job's log lines are INFO records
    of ``sagemaker.core.resources``: printed plainly. The config and credential chatter stays quiet.
    """
    import rich

    rich.reconfigure(force_jupyter=False, force_terminal=False, force_interactive=False, quiet=True)
    resources = logging.getLogger("sagemaker.core.resources")
    resources.setLevel(logging.INFO)
    resources.propagate = False
    if not any(isinstance(handler, PlainLog) for handler in resources.handlers):
        resources.addHandler(PlainLog())
    for name in ("sagemaker.config", "sagemaker.core", "sagemaker.train", "botocore.credentials", "botocore.configprovider"):
        logging.getLogger(name).setLevel(logging.WARNING)
