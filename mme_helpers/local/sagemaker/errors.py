"""The SageMaker API's error types, as botocore maps them to exception classes."""

from __future__ import annotations


class SageMakerError(Exception):
    """An error the control plane returns as ``{"__type": ..., "message": ...}``."""

    error_type = "ValidationException"
    status = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ValidationException(SageMakerError):
    error_type = "ValidationException"


class ResourceNotFound(SageMakerError):
    error_type = "ResourceNotFound"


class ResourceInUse(SageMakerError):
    error_type = "ResourceInUse"


class ResourceLimitExceeded(SageMakerError):
    error_type = "ResourceLimitExceeded"


class UnknownOperation(SageMakerError):
    error_type = "UnknownOperationException"


class SerializationException(SageMakerError):
    error_type = "SerializationException"
