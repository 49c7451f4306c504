"""State of the local SageMaker control plane: training jobs, models, endpoint configs, endpoints.

Protocol parsing lives in ``responses.py``; this module only knows resources, their life cycles
and the error messages AWS gives for them.
"""

from __future__ import annotations

import copy
import re
import threading
import time
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from ..config import ACCOUNT_ID
from .errors import ResourceInUse, ResourceNotFound, ValidationException

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
        request = self.request
        answer: dict[str, Any] = {
            "TrainingJobName": self.name,
            "TrainingJobArn": self.arn,
            "ModelArtifacts": {"S3ModelArtifacts": self.model_artifact},
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
        for key in ("DebugHookConfig", "ProfilerConfig", "Environment"):
            if key in request:
                answer[key] = request[key]
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


@dataclass(frozen=True)
class ListQuery:
    """What the List* operations filter, sort and page by."""

    name_contains: str | None = None
    status_equals: str | None = None
    sort_by: str = "CreationTime"  # or "Name"
    sort_order: str = "Descending"
    max_results: int = 10
    next_token: str | None = None


def page(resources: list, query: ListQuery) -> tuple[list, str | None]:
    """One page of ``resources`` (objects with ``name``, ``creation_time``, maybe ``status``) and
    the token of the next one."""
    if query.name_contains:
        needle = query.name_contains.lower()
        resources = [r for r in resources if needle in r.name.lower()]
    if query.status_equals:
        resources = [r for r in resources if getattr(r, "status", None) == query.status_equals]
    if query.sort_by == "Name":
        resources = sorted(resources, key=lambda r: r.name)
    else:
        resources = sorted(resources, key=lambda r: (r.creation_time, r.name))
    if query.sort_order == "Descending":
        resources.reverse()
    try:
        start = int(query.next_token or 0)
    except ValueError as exc:
        raise ValidationException("Invalid pagination token.") from exc
    if start < 0 or query.max_results < 1:
        raise ValidationException("Invalid pagination token or MaxResults.")
    end = start + query.max_results
    return resources[start:end], (str(end) if end < len(resources) else None)


class TrainingService(Protocol):
    def submit(self, job: TrainingJob) -> None: ...


class HostingService(Protocol):
    def provision(self, endpoint: Endpoint, config: EndpointConfig, models: dict[str, Model]) -> Any: ...

    def teardown(self, runtime: Any, metrics: bool = True) -> None: ...


class ResourceStore(Protocol):
    def save_resource(self, kind: str, name: str, record: dict[str, Any]) -> None: ...

    def drop_resource(self, kind: str, name: str) -> None: ...

    def resources(self, kind: str) -> list[dict[str, Any]]: ...


KINDS = {TrainingJob: "training-jobs", Model: "models", EndpointConfig: "endpoint-configs", Endpoint: "endpoints"}
NOT_STORED = {"runtime"}  # an endpoint's serving side is rebuilt, never stored


class SageMakerBackend:
    """Every SageMaker resource of the local account, behind one lock. With a ``store``, every
    change is written through (one small JSON file per resource, under the lock so that writes
    keep the order of changes) and ``restore`` brings it all back."""

    def __init__(
        self,
        region: str,
        training: TrainingService | None = None,
        hosting: HostingService | None = None,
        store: ResourceStore | None = None,
    ):
        self.region = region
        self.training = training
        self.hosting = hosting
        self.store = store
        self.lock = threading.RLock()
        self.training_jobs: dict[str, TrainingJob] = {}
        self.models: dict[str, Model] = {}
        self.endpoint_configs: dict[str, EndpointConfig] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.tags: dict[str, dict[str, str]] = {}

    # persistence -------------------------------------------------------------------------------

    def _save(self, resource) -> None:
        """Write a changed resource through to the store (caller holds the lock)."""
        if self.store is None:
            return
        record = {f.name: getattr(resource, f.name) for f in fields(resource) if f.name not in NOT_STORED}
        record["tags"] = self.tags.get(resource.arn, {})
        self.store.save_resource(KINDS[type(resource)], resource.name, record)

    def _drop(self, resource) -> None:
        if self.store is not None:
            self.store.drop_resource(KINDS[type(resource)], resource.name)

    def restore(self, now: float | None = None) -> list[Endpoint]:
        """Bring back every stored resource; returns the endpoints to provision again (their caches
        start cold). A job that was running when the service stopped ends Failed, with the reason."""
        if self.store is None:
            return []
        now = now or time.time()
        to_provision = []
        with self.lock:
            for cls, kind in KINDS.items():
                table = self._table(cls)
                for record in self.store.resources(kind):
                    tags = record.pop("tags", {})
                    resource = cls(**{f.name: record[f.name] for f in fields(cls) if f.name in record})
                    table[resource.name] = resource
                    if tags:
                        self.tags[resource.arn] = tags
                    if isinstance(resource, TrainingJob) and resource.status in ("InProgress", "Stopping"):
                        reason = "The local service stopped while this job was running; start the job again."
                        resource.status, resource.failure_reason, resource.end_time = "Failed", reason, now
                        self.record_transition(resource, "Failed", "Training job failed. " + reason)
                    elif isinstance(resource, Endpoint):
                        if resource.status == "Deleting":
                            del table[resource.name]
                            self._drop(resource)
                        elif resource.status != "Failed":
                            resource.status = "Creating"
                            self._save(resource)
                            to_provision.append(resource)
        return to_provision

    def provision_restored(self, endpoints: list[Endpoint]) -> None:
        for endpoint in endpoints:
            with self.lock:
                config = self.endpoint_configs.get(endpoint.config_name)
                models = self._models_of(config) if config is not None else {}
            if config is None:
                with self.lock:
                    endpoint.status = "Failed"
                    endpoint.failure_reason = f"its endpoint configuration {endpoint.config_name} no longer exists"
                    self._save(endpoint)
                continue
            threading.Thread(
                target=self._provision, args=(endpoint, config, models), name=f"provision-{endpoint.name}", daemon=True
            ).start()

    def _models_of(self, config: EndpointConfig) -> dict[str, Model]:
        """The models a configuration names, as they are now: deleting one later does not break a
        running endpoint (as on AWS). Caller holds the lock."""
        return {
            v["ModelName"]: self.models[v["ModelName"]]
            for v in config.request["ProductionVariants"]
            if v["ModelName"] in self.models
        }

    def _table(self, cls) -> dict:
        return {
            TrainingJob: self.training_jobs,
            Model: self.models,
            EndpointConfig: self.endpoint_configs,
            Endpoint: self.endpoints,
        }[cls]

    # tags ----------------------------------------------------------------------------------------

    def _known_arns(self) -> set[str]:
        kinds = (self.training_jobs, self.models, self.endpoint_configs, self.endpoints)
        return {resource.arn for kind in kinds for resource in kind.values()}

    def _by_arn(self, resource_arn: str):
        for table in (self.training_jobs, self.models, self.endpoint_configs, self.endpoints):
            for resource in table.values():
                if resource.arn == resource_arn:
                    return resource
        return None

    def add_tags(self, resource_arn: str, tags: list[dict[str, str]]) -> None:
        with self.lock:
            resource = self._by_arn(resource_arn)
            if resource is None:
                raise ValidationException(f"Could not find resource {resource_arn}.")
            self.tags.setdefault(resource_arn, {}).update({t["Key"]: t.get("Value", "") for t in tags})
            self._save(resource)

    def list_tags(self, resource_arn: str) -> list[dict[str, str]]:
        with self.lock:
            if resource_arn not in self._known_arns():
                raise ValidationException(f"Could not find resource {resource_arn}.")
            return [{"Key": k, "Value": v} for k, v in self.tags.get(resource_arn, {}).items()]

    def delete_tags(self, resource_arn: str, keys: list[str]) -> None:
        with self.lock:
            for key in keys:
                self.tags.get(resource_arn, {}).pop(key, None)
            resource = self._by_arn(resource_arn)
            if resource is not None:
                self._save(resource)

    def _tag_new(self, resource_arn: str, request: dict[str, Any]) -> None:
        if request.get("Tags"):
            self.tags[resource_arn] = {t["Key"]: t.get("Value", "") for t in request["Tags"]}

    # training jobs -----------------------------------------------------------------------------

    def create_training_job(self, request: dict[str, Any]) -> TrainingJob:
        name = request["TrainingJobName"]
        check_name(name, "trainingJobName")
        with self.lock:
            if name in self.training_jobs:
                raise ResourceInUse(
                    "Training job names must be unique within an AWS account and region, and a training job "
                    f"with this name already exists ({self.training_jobs[name].arn})"
                )
            job = TrainingJob(name=name, arn=arn(self.region, "training-job", name), request=copy.deepcopy(request))
            self.training_jobs[name] = job
            self._tag_new(job.arn, request)
            self.record_transition(job, "Starting", "Launching requested ML instances")
        if self.training is not None:
            self.training.submit(job)
        return job

    def record_transition(self, job: TrainingJob, status: str, message: str) -> None:
        """Move a job to a new secondary status, closing the previous transition."""
        with self.lock:
            now = time.time()
            if job.transitions and "EndTime" not in job.transitions[-1]:
                job.transitions[-1]["EndTime"] = now
            job.transitions.append({"Status": status, "StartTime": now, "StatusMessage": message})
            job.secondary_status = status
            job.last_modified_time = now
            if status in ("Completed", "Failed", "Stopped"):
                job.transitions[-1]["EndTime"] = now
            self._save(job)

    def finish_training_job(
        self,
        job: TrainingJob,
        status: str,
        message: str,
        failure_reason: str | None = None,
        metrics: list[dict[str, Any]] | None = None,
        model_artifact: str | None = None,
    ) -> None:
        with self.lock:
            job.end_time = time.time()
            job.status = status
            job.failure_reason = failure_reason
            if metrics is not None:
                job.metrics = metrics
            if model_artifact is not None:
                job.model_artifact = model_artifact
            self.record_transition(job, status, message)

    def get_training_job(self, name: str) -> TrainingJob:
        with self.lock:
            job = self.training_jobs.get(name)
        if job is None:
            raise ResourceNotFound("Requested resource not found.")
        return job

    def list_training_jobs(self, query: ListQuery) -> tuple[list[TrainingJob], str | None]:
        with self.lock:
            jobs = list(self.training_jobs.values())
        return page(jobs, query)

    def stop_training_job(self, name: str) -> None:
        job = self.get_training_job(name)
        with self.lock:
            if job.status != "InProgress":
                raise ValidationException(f"The request was rejected because the training job is in status {job.status}.")
            job.stop_requested = True
            job.status = "Stopping"
            self.record_transition(job, "Stopping", "Stopping the training job")

    # models ------------------------------------------------------------------------------------

    def create_model(self, request: dict[str, Any]) -> Model:
        name = request["ModelName"]
        check_name(name, "modelName")
        with self.lock:
            model_arn = arn(self.region, "model", name)
            if name in self.models:
                raise ValidationException(f'Cannot create already existing model "{model_arn}".')
            model = Model(name=name, arn=model_arn, request=copy.deepcopy(request))
            if not model.containers:
                raise ValidationException("Either PrimaryContainer or Containers must be given.")
            self.models[name] = model
            self._tag_new(model.arn, request)
            self._save(model)
            return model

    def list_models(self, query: ListQuery) -> tuple[list[Model], str | None]:
        with self.lock:
            models = list(self.models.values())
        return page(models, query)

    def get_model(self, name: str) -> Model:
        with self.lock:
            model = self.models.get(name)
        if model is None:
            raise ValidationException(f'Could not find model "{arn(self.region, "model", name)}".')
        return model

    def delete_model(self, name: str) -> None:
        self.get_model(name)
        with self.lock:
            model = self.models.pop(name, None)
            if model is not None:
                self._drop(model)

    # endpoint configs ------------------------------------------------------------------------------

    def create_endpoint_config(self, request: dict[str, Any]) -> EndpointConfig:
        name = request["EndpointConfigName"]
        check_name(name, "endpointConfigName")
        with self.lock:
            config_arn = arn(self.region, "endpoint-config", name)
            if name in self.endpoint_configs:
                raise ValidationException(f'Cannot create already existing endpoint configuration "{config_arn}".')
            for variant in request["ProductionVariants"]:
                if variant.get("ModelName") not in self.models:
                    raise ValidationException(
                        f'Could not find model "{arn(self.region, "model", variant.get("ModelName", ""))}".'
                    )
            config = EndpointConfig(name=name, arn=config_arn, request=copy.deepcopy(request))
            self.endpoint_configs[name] = config
            self._tag_new(config.arn, request)
            self._save(config)
            return config

    def list_endpoint_configs(self, query: ListQuery) -> tuple[list[EndpointConfig], str | None]:
        with self.lock:
            configs = list(self.endpoint_configs.values())
        return page(configs, query)

    def get_endpoint_config(self, name: str) -> EndpointConfig:
        with self.lock:
            config = self.endpoint_configs.get(name)
        if config is None:
            raise ValidationException(f'Could not find endpoint configuration "{name}".')
        return config

    def delete_endpoint_config(self, name: str) -> None:
        self.get_endpoint_config(name)
        with self.lock:
            config = self.endpoint_configs.pop(name, None)
            if config is not None:
                self._drop(config)

    # endpoints ---------------------------------------------------------------------------------

    def create_endpoint(self, request: dict[str, Any]) -> Endpoint:
        name = request["EndpointName"]
        check_name(name, "endpointName")
        with self.lock:
            endpoint_arn = arn(self.region, "endpoint", name)
            if name in self.endpoints:
                raise ValidationException(f'Cannot create already existing endpoint "{endpoint_arn}".')
            config = self.get_endpoint_config(request["EndpointConfigName"])
            endpoint = Endpoint(
                name=name,
                arn=endpoint_arn,
                config_name=config.name,
                variants=copy.deepcopy(config.request["ProductionVariants"]),
            )
            self.endpoints[name] = endpoint
            self._tag_new(endpoint.arn, request)
            self._save(endpoint)
            models = self._models_of(config)
        threading.Thread(
            target=self._provision, args=(endpoint, config, models), name=f"provision-{name}", daemon=True
        ).start()
        return endpoint

    def _provision(self, endpoint: Endpoint, config: EndpointConfig, models: dict[str, Model]) -> None:
        try:
            runtime = self.hosting.provision(endpoint, config, models) if self.hosting else None
        except Exception as exc:  # the reason goes to the user, as AWS's FailureReason does
            with self.lock:
                if endpoint.status == "Creating":
                    endpoint.status, endpoint.failure_reason = "Failed", str(exc)
                    endpoint.last_modified_time = time.time()
                    self._save(endpoint)
            return
        with self.lock:
            deleted_meanwhile = endpoint.status != "Creating"
            if not deleted_meanwhile:
                endpoint.runtime = runtime
                endpoint.status = "InService"
                endpoint.last_modified_time = time.time()
                self._save(endpoint)
        if deleted_meanwhile and runtime is not None and self.hosting:
            self.hosting.teardown(runtime)  # outside the lock: it flushes metrics over HTTP

    def update_endpoint(self, request: dict[str, Any]) -> Endpoint:
        """``Updating`` at once; the new configuration is provisioned (cold caches) while the old
        one keeps serving, then replaces it. A failed update leaves the old one serving, with the
        reason in ``FailureReason``, as AWS rolls back."""
        endpoint = self.get_endpoint(request["EndpointName"])
        config = self.get_endpoint_config(request["EndpointConfigName"])
        with self.lock:
            if endpoint.status != "InService":
                raise ValidationException(
                    f'Cannot update in-progress endpoint "{endpoint.arn}".'
                    if endpoint.status in ("Creating", "Updating")
                    else f'Cannot update endpoint "{endpoint.arn}" in status {endpoint.status}.'
                )
            endpoint.status = "Updating"
            endpoint.failure_reason = None
            endpoint.last_modified_time = time.time()
            models = self._models_of(config)
            self._save(endpoint)
        threading.Thread(
            target=self._update, args=(endpoint, config, models), name=f"update-{endpoint.name}", daemon=True
        ).start()
        return endpoint

    def _update(self, endpoint: Endpoint, config: EndpointConfig, models: dict[str, Model]) -> None:
        try:
            runtime = self.hosting.provision(endpoint, config, models) if self.hosting else None
        except Exception as exc:
            with self.lock:
                if endpoint.status == "Updating":
                    endpoint.status = "InService"
                    endpoint.failure_reason = f"The update to {config.name} failed, the endpoint serves as before: {exc}"
                    endpoint.last_modified_time = time.time()
                    self._save(endpoint)
            return
        with self.lock:
            replaced = endpoint.status == "Updating"
            old = endpoint.runtime
            if replaced:
                endpoint.runtime = runtime
                endpoint.config_name = config.name
                endpoint.variants = copy.deepcopy(config.request["ProductionVariants"])
                endpoint.status = "InService"
                endpoint.last_modified_time = time.time()
                self._save(endpoint)
        if self.hosting is not None:  # outside the lock: tear-down waits for the event loop
            if replaced and old is not None:
                self.hosting.teardown(old, metrics=False)
            elif not replaced and runtime is not None:
                self.hosting.teardown(runtime, metrics=False)

    def list_endpoints(self, query: ListQuery) -> tuple[list[Endpoint], str | None]:
        with self.lock:
            endpoints = list(self.endpoints.values())
        return page(endpoints, query)

    def get_endpoint(self, name: str) -> Endpoint:
        with self.lock:
            endpoint = self.endpoints.get(name)
        if endpoint is None:
            raise ValidationException(f'Could not find endpoint "{arn(self.region, "endpoint", name)}".')
        return endpoint

    def serving_endpoint(self, name: str) -> Endpoint | None:
        """The endpoint if it exists (any status), for the runtime's hot path."""
        return self.endpoints.get(name)

    def delete_endpoint(self, name: str) -> None:
        """``Deleting`` at once; the runtime is torn down in the background, then the endpoint is gone."""
        endpoint = self.get_endpoint(name)
        with self.lock:
            if endpoint.status == "Deleting":
                return
            endpoint.status = "Deleting"
            endpoint.last_modified_time = time.time()
            runtime, endpoint.runtime = endpoint.runtime, None
            self._save(endpoint)
        threading.Thread(target=self._teardown, args=(endpoint, runtime), name=f"delete-{name}", daemon=True).start()

    def _teardown(self, endpoint: Endpoint, runtime: Any) -> None:
        try:
            if runtime is not None and self.hosting:
                self.hosting.teardown(runtime)
        finally:
            with self.lock:
                if self.endpoints.get(endpoint.name) is endpoint:
                    del self.endpoints[endpoint.name]
                    self._drop(endpoint)
