"""Local mode: a service on 127.0.0.1 that speaks S3, SageMaker and SageMaker Runtime."""

from .config import ServiceInfo, client_environment, default_home
from .lifecycle import LocalServiceError, PortInUseError, running_service, start, status, stop

__all__ = [
    "LocalServiceError",
    "PortInUseError",
    "ServiceInfo",
    "client_environment",
    "default_home",
    "running_service",
    "start",
    "status",
    "stop",
]
