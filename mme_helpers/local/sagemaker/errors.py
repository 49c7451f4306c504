"""The SageMaker API's error types, as botocore maps them to exception classes.

Only the ones AWS really returns here: a missing resource is a ``ValidationException`` for every
implemented operation (even DescribeTrainingJob, whose documentation lists ResourceNotFound:
aws/aws-sdk#165), so there is no ResourceNotFound class to raise by mistake.
"""

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


class ResourceInUse(SageMakerError):
    error_type = "ResourceInUse"


class UnknownOperation(SageMakerError):
    error_type = "UnknownOperationException"


class SerializationException(SageMakerError):
    error_type = "SerializationException"
