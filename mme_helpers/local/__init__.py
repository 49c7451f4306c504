"""Local mode: a service on 127.0.0.1 that speaks S3, SageMaker and SageMaker Runtime.

This package's names below are its whole interface to the notebooks' helpers (``session``,
``endpoint``): they import nothing else from ``mme_helpers.local`` (``tests/test_layers.py``).
"""

from . import rehearsal  # the AWS rehearsal (suite --rehearse-aws)
from .config import DEFAULT_REGION, ROLE_ARN, ServiceInfo, clear_variables, client_environment, default_home
from .lifecycle import LocalServiceError, PortInUseError, running_service, start, status, stop
from .signed_http import signed_get

__all__ = [
    "DEFAULT_REGION",
    "ROLE_ARN",
    "LocalServiceError",
    "PortInUseError",
    "ServiceInfo",
    "clear_variables",
    "client_environment",
    "default_home",
    "rehearsal",
    "running_service",
    "signed_get",
    "start",
    "status",
    "stop",
]
