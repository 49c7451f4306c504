"""The SageMaker resource records (training job, model, endpoint configuration, endpoint) and what
``Describe*`` answers for each; nothing here locks or stores: the backend does."""

from __future__ import annotations

import copy
import re
import time
from dataclasses import dataclass, field
from typing import Any

from ..config import ACCOUNT_ID
from .errors import ValidationException

_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


def arn(region: str, kind: str, name: str) -> str:
    # AWS lower-cases resource names in ARNs.
    return f"arn:aws:sagemaker:{region}:{ACCOUNT_ID}:{kind}/{name.lower()}"


def check_name(name: str, what: str) -> None:
    if not _NAME.match(name or ""):
        raise ValidationException(
            f"1 validation error detected: Value '{name}' at '{what}' failed to satisfy constraint: "
            "Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
        )


@dataclass
class TrainingJob:
    name: str
    arn: str
    request: dict[str, Any]
    status: str = "InProgress"
    secondary_status: str = "Starting"
    transitions: list[dict[str, Any]] = field(default_factory=list)
    failure_reason: str | None = None
    creation_time: float = field(default_factory=time.time)
    last_modified_time: float = field(default_factory=time.time)
    start_time: float | None = None
    end_time: float | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    model_artifact: str = ""
    stop_requested: bool = False

    def describe(self) -> dict[str, Any]:
        """The DescribeTrainingJob answer; the caller holds the backend's lock (transitions and
        metrics change while the job runs)."""
        request = self.request
        answer: dict[str, Any] = {
            "TrainingJobName": self.name,
            "TrainingJobArn": self.arn,
            "TrainingJobStatus": self.status,
            "SecondaryStatus": self.secondary_status,
            "HyperParameters": request.get("HyperParameters", {}),
            "AlgorithmSpecification": request["AlgorithmSpecification"],
            "RoleArn": request["RoleArn"],
            "InputDataConfig": request.get("InputDataConfig", []),
            "OutputDataConfig": {"KmsKeyId": "", **request["OutputDataConfig"]},
            "ResourceConfig": request["ResourceConfig"],
            "StoppingCondition": request["StoppingCondition"],
            "CreationTime": self.creation_time,
            "LastModifiedTime": self.last_modified_time,
            "SecondaryStatusTransitions": copy.deepcopy(self.transitions),
            "EnableNetworkIsolation": request.get("EnableNetworkIsolation", False),
            "EnableInterContainerTrafficEncryption": request.get("EnableInterContainerTrafficEncryption", False),
            "EnableManagedSpotTraining": request.get("EnableManagedSpotTraining", False),
        }
        if self.model_artifact:  # no artifact yet (or ever): no S3ModelArtifacts, whose pattern forbids ""
            answer["ModelArtifacts"] = {"S3ModelArtifacts": self.model_artifact}
        for key in ("DebugHookConfig", "ProfilerConfig", "Environment"):
            if key in request:
                answer[key] = copy.deepcopy(request[key])
        if self.start_time:
            answer["TrainingStartTime"] = self.start_time
        if self.end_time:
            answer["TrainingEndTime"] = self.end_time
            answer["TrainingTimeInSeconds"] = max(1, int(self.end_time - (self.start_time or self.end_time)))
            answer["BillableTimeInSeconds"] = answer["TrainingTimeInSeconds"]
        if self.metrics:
            answer["FinalMetricDataList"] = copy.deepcopy(self.metrics)
        if self.failure_reason:
            answer["FailureReason"] = self.failure_reason
        return answer


@dataclass
class Model:
    name: str
    arn: str
    request: dict[str, Any]
    creation_time: float = field(default_factory=time.time)

    @property
    def containers(self) -> list[dict[str, Any]]:
        if "PrimaryContainer" in self.request:
            return [self.request["PrimaryContainer"]]
        return list(self.request.get("Containers", []))

    def describe(self) -> dict[str, Any]:
        answer = {
            "ModelName": self.name,
            "ModelArn": self.arn,
            "ExecutionRoleArn": self.request.get("ExecutionRoleArn", ""),
            "CreationTime": self.creation_time,
            "EnableNetworkIsolation": self.request.get("EnableNetworkIsolation", False),
        }
        for key in ("PrimaryContainer", "Containers", "VpcConfig"):
            if key in self.request:
                answer[key] = self.request[key]
        return answer


@dataclass
class EndpointConfig:
    name: str
    arn: str
    request: dict[str, Any]
    creation_time: float = field(default_factory=time.time)

    def describe(self) -> dict[str, Any]:
        answer = {
            "EndpointConfigName": self.name,
            "EndpointConfigArn": self.arn,
            "ProductionVariants": self.request["ProductionVariants"],
            "CreationTime": self.creation_time,
        }
        for key in ("DataCaptureConfig", "KmsKeyId", "AsyncInferenceConfig"):
            if key in self.request:
                answer[key] = self.request[key]
        return answer


@dataclass
class Endpoint:
    name: str
    arn: str
    config_name: str
    variants: list[dict[str, Any]]
    status: str = "Creating"
    failure_reason: str | None = None
    creation_time: float = field(default_factory=time.time)
    last_modified_time: float = field(default_factory=time.time)
    runtime: Any = None  # the serving side, once InService

    def describe(self) -> dict[str, Any]:
        """The DescribeEndpoint answer; the caller holds the backend's lock (an update replaces
        the variants and the status)."""
        answer = {
            "EndpointName": self.name,
            "EndpointArn": self.arn,
            "EndpointConfigName": self.config_name,
            "EndpointStatus": self.status,
            "CreationTime": self.creation_time,
            "LastModifiedTime": self.last_modified_time,
            "ProductionVariants": [
                {
                    "VariantName": variant["VariantName"],
                    "CurrentWeight": float(variant.get("InitialVariantWeight", 1.0)),
                    "DesiredWeight": float(variant.get("InitialVariantWeight", 1.0)),
                    "CurrentInstanceCount": (
                        variant.get("InitialInstanceCount", 1) if self.status in ("InService", "Updating") else 0
                    ),
                    "DesiredInstanceCount": variant.get("InitialInstanceCount", 1),
                }
                for variant in self.variants
            ],
        }
        if self.failure_reason:
            answer["FailureReason"] = self.failure_reason
        return answer
