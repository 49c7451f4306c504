"""The local SageMaker account: every resource behind one lock, and every change of state.

Protocol parsing lives in ``responses.py``, the records in ``resources.py``, paging in
``listing.py``, the disk in ``persistence.py`` and the slow endpoint work in
``endpoint_lifecycle.py``. Whoever changes a resource (a request, a training thread, an endpoint
worker) does it through a method here, under ``lock``, and the change is written through at once.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from .endpoint_lifecycle import EndpointLifecycle, HostingService
from .errors import ResourceInUse, ValidationException
from .listing import TRAINING_JOBS, ListQuery, page
from .persistence import ResourcePersistence, ResourceStore
from .resources import Endpoint, EndpointConfig, Model, TrainingJob, arn, check_name

TRAINING_JOB_NOT_FOUND = "Requested resource not found."
MAX_TAGS_PER_CALL = 50
RESERVED_TAG_PREFIX = "aws:"


class TrainingService(Protocol):
    def submit(self, job: TrainingJob) -> None: ...


def _checked_tags(tags: list[dict[str, str]] | None) -> dict[str, str]:
    """Tags as AWS takes them: at most 50 a call, none under the ``aws:`` prefix it keeps for itself."""
    tags = tags or []
    if len(tags) > MAX_TAGS_PER_CALL:
        raise ValidationException(
            f"1 validation error detected: Value '{tags}' at 'tags' failed to satisfy constraint: "
            f"Member must have length less than or equal to {MAX_TAGS_PER_CALL}"
        )
    for tag in tags:
        if tag["Key"].lower().startswith(RESERVED_TAG_PREFIX):
            raise ValidationException(
                f"Tag keys beginning with '{RESERVED_TAG_PREFIX}' are reserved for AWS use: {tag['Key']}"
            )
    return {t["Key"]: t.get("Value", "") for t in tags}


def _check_variants(variants: list[dict[str, Any]]) -> None:
    """What CreateEndpointConfig refuses beyond the model's constraints: two variants of one name,
    and a variant that is neither instance-based nor serverless."""
    seen: set[str] = set()
    for variant in variants:
        name = variant["VariantName"]
        if name in seen:
            raise ValidationException(f"Variant name(s) [{name}] are duplicated. Variant names must be unique.")
        seen.add(name)
        if "InstanceType" not in variant and "ServerlessConfig" not in variant:
            raise ValidationException(
                f"Either InstanceType or ServerlessConfig must be specified for the production variant {name}."
            )


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
        assumable_role: Callable[[str], bool] | None = None,
    ):
        self.region = region
        self.assumable_role = assumable_role  # IAM's answer: can SageMaker assume this role? (None: not checked)
        self.training = training
        self.hosting = hosting
        self.persistence = ResourcePersistence(store)
        self.lifecycle = EndpointLifecycle(hosting, self)
        self.lock = threading.RLock()
        self.training_jobs: dict[str, TrainingJob] = {}
        self.models: dict[str, Model] = {}
        self.endpoint_configs: dict[str, EndpointConfig] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.tags: dict[str, dict[str, str]] = {}

    def shutdown(self, wait: bool = False) -> None:
        """Service stop: the endpoint work not yet started is dropped; with ``wait``, the work under
        way is waited for (not from the event loop: a tear-down waits for it)."""
        self.lifecycle.shutdown(wait)

    # persistence -------------------------------------------------------------------------------

    def _save(self, resource) -> None:
        """Write a changed resource through (caller holds the lock)."""
        self.persistence.save(resource, self.tags.get(resource.arn, {}))

    def _forget(self, resource) -> None:
        """A resource is gone: its record, its tags (a new one of that name starts untagged). Caller holds the lock."""
        self._table(type(resource)).pop(resource.name, None)
        self.tags.pop(resource.arn, None)
        self.persistence.drop(resource)

    def restore(self, now: float | None = None) -> list[Endpoint]:
        """Bring back every stored resource; returns the endpoints to provision again (their caches
        start cold). A job that was running when the service stopped ends Failed, with the reason."""
        now = now or time.time()
        to_provision = []
        with self.lock:
            for resource, tags in self.persistence.load():
                self._table(type(resource))[resource.name] = resource
                if tags:
                    self.tags[resource.arn] = tags
                if isinstance(resource, TrainingJob) and resource.status in ("InProgress", "Stopping"):
                    reason = "The local service stopped while this job was running; start the job again."
                    self.finish_training_job(resource, "Failed", "Training job failed. " + reason, reason, end_time=now)
                elif isinstance(resource, Endpoint):
                    if resource.status == "Deleting":
                        self._forget(resource)
                    elif resource.status != "Failed":
                        resource.status = "Creating"
                        self._save(resource)
                        to_provision.append(resource)
        return to_provision

    def provision_restored(self, endpoints: list[Endpoint]) -> None:
        for endpoint in endpoints:
            with self.lock:
                config = self.endpoint_configs.get(endpoint.config_name)
                if config is None:
                    endpoint.status = "Failed"
                    endpoint.failure_reason = f"its endpoint configuration {endpoint.config_name} no longer exists"
                    self._save(endpoint)
                    continue
                models = self._models_of(config)
            self.lifecycle.provision(endpoint, config, models)

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

    def _by_arn(self, resource_arn: str):
        for table in (self.training_jobs, self.models, self.endpoint_configs, self.endpoints):
            for resource in table.values():
                if resource.arn == resource_arn:
                    return resource
        return None

    def add_tags(self, resource_arn: str, tags: list[dict[str, str]]) -> None:
        new = _checked_tags(tags)
        with self.lock:
            resource = self._by_arn(resource_arn)
            if resource is None:
                raise ValidationException(f"Could not find resource {resource_arn}.")
            self.tags.setdefault(resource_arn, {}).update(new)
            self._save(resource)

    def list_tags(self, resource_arn: str) -> list[dict[str, str]]:
        with self.lock:
            if self._by_arn(resource_arn) is None:
                raise ValidationException(f"Could not find resource {resource_arn}.")
            return [{"Key": k, "Value": v} for k, v in self.tags.get(resource_arn, {}).items()]

    def delete_tags(self, resource_arn: str, keys: list[str]) -> None:
        with self.lock:
            resource = self._by_arn(resource_arn)
            if resource is None:
                raise ValidationException(f"Could not find resource {resource_arn}.")
            for key in keys:
                self.tags.get(resource_arn, {}).pop(key, None)
            self._save(resource)

    def _tag_new(self, resource_arn: str, tags: dict[str, str]) -> None:
        """A new resource's tags: only those of its request (caller holds the lock)."""
        if tags:
            self.tags[resource_arn] = tags
        else:
            self.tags.pop(resource_arn, None)

    def _check_role(self, role_arn: str | None) -> None:
        """SageMaker refuses a role that does not exist or does not trust it, in AWS's words."""
        if role_arn and self.assumable_role is not None and not self.assumable_role(role_arn):
            raise ValidationException(
                f"Could not assume role {role_arn}. Please ensure that the role exists and allows principal "
                "'sagemaker.amazonaws.com' to assume the role."
            )

    # training jobs -----------------------------------------------------------------------------

    def create_training_job(self, request: dict[str, Any]) -> TrainingJob:
        name = request["TrainingJobName"]
        check_name(name, "trainingJobName")
        tags = _checked_tags(request.get("Tags"))
        self._check_role(request.get("RoleArn"))
        with self.lock:
            if name in self.training_jobs:
                raise ResourceInUse(
                    "Training job names must be unique within an AWS account and region, and a training job "
                    f"with this name already exists ({self.training_jobs[name].arn})"
                )
            job = TrainingJob(name=name, arn=arn(self.region, "training-job", name), request=copy.deepcopy(request))
            self.training_jobs[name] = job
            self._tag_new(job.arn, tags)
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
            if status in ("Completed", "Failed", "Stopped", "MaxRuntimeExceeded"):
                job.transitions[-1]["EndTime"] = now
            self._save(job)

    def start_training(self, job: TrainingJob) -> None:
        """The job's instances are up: it downloads its data (TrainingStartTime from now)."""
        with self.lock:
            job.start_time = time.time()
            self.record_transition(job, "Downloading", "Downloading input data")

    def finish_training_job(
        self,
        job: TrainingJob,
        status: str,
        message: str,
        failure_reason: str | None = None,
        metrics: list[dict[str, Any]] | None = None,
        model_artifact: str | None = None,
        secondary_status: str | None = None,
        end_time: float | None = None,
    ) -> None:
        """The job's end, saved whole: ``secondary_status`` is the last transition's status when it
        differs from ``status`` (``MaxRuntimeExceeded`` for a job Stopped by its time limit)."""
        with self.lock:
            job.end_time = end_time or time.time()
            job.status = status
            job.failure_reason = failure_reason
            if metrics is not None:
                job.metrics = metrics
            if model_artifact is not None:
                job.model_artifact = model_artifact
            self.record_transition(job, secondary_status or status, message)

    def get_training_job(self, name: str) -> TrainingJob:
        """The job; an unknown name is a ValidationException on AWS, although its documentation
        lists ResourceNotFound (aws/aws-sdk#165)."""
        with self.lock:
            job = self.training_jobs.get(name)
        if job is None:
            raise ValidationException(TRAINING_JOB_NOT_FOUND)
        return job

    def describe_training_job(self, name: str) -> dict[str, Any]:
        """DescribeTrainingJob, read under the lock: a training thread may be moving the job on."""
        job = self.get_training_job(name)
        with self.lock:
            return job.describe()

    def list_training_jobs(self, query: ListQuery) -> tuple[list[TrainingJob], str | None]:
        with self.lock:
            jobs = list(self.training_jobs.values())
        return page(jobs, query, TRAINING_JOBS)

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
        tags = _checked_tags(request.get("Tags"))
        self._check_role(request.get("ExecutionRoleArn"))
        with self.lock:
            model_arn = arn(self.region, "model", name)
            if name in self.models:
                raise ValidationException(f'Cannot create already existing model "{model_arn}".')
            model = Model(name=name, arn=model_arn, request=copy.deepcopy(request))
            if not model.containers:
                raise ValidationException("Either PrimaryContainer or Containers must be given.")
            self.models[name] = model
            self._tag_new(model.arn, tags)
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
        with self.lock:
            self._forget(self.get_model(name))

    # endpoint configs ------------------------------------------------------------------------------

    def create_endpoint_config(self, request: dict[str, Any]) -> EndpointConfig:
        name = request["EndpointConfigName"]
        check_name(name, "endpointConfigName")
        tags = _checked_tags(request.get("Tags"))
        _check_variants(request["ProductionVariants"])
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
            self._tag_new(config.arn, tags)
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
            raise ValidationException(
                f'Could not find endpoint configuration "{arn(self.region, "endpoint-config", name)}".'
            )
        return config

    def delete_endpoint_config(self, name: str) -> None:
        with self.lock:
            self._forget(self.get_endpoint_config(name))

    # endpoints ---------------------------------------------------------------------------------

    def create_endpoint(self, request: dict[str, Any]) -> Endpoint:
        name = request["EndpointName"]
        check_name(name, "endpointName")
        tags = _checked_tags(request.get("Tags"))
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
            self._tag_new(endpoint.arn, tags)
            self._save(endpoint)
            models = self._models_of(config)
        self.lifecycle.provision(endpoint, config, models)
        return endpoint

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
        self.lifecycle.update(endpoint, config, models)
        return endpoint

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

    def describe_endpoint(self, name: str) -> dict[str, Any]:
        """DescribeEndpoint, read under the lock: an endpoint worker may be changing it."""
        endpoint = self.get_endpoint(name)
        with self.lock:
            return endpoint.describe()

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
        self.lifecycle.delete(endpoint, runtime)

    # what the endpoint work reports (EndpointStates) ---------------------------------------------

    def provisioned(self, endpoint: Endpoint, runtime: Any) -> bool:
        with self.lock:
            if endpoint.status != "Creating":
                return False  # deleted meanwhile
            endpoint.runtime = runtime
            endpoint.status = "InService"
            endpoint.last_modified_time = time.time()
            self._save(endpoint)
            return True

    def provisioning_failed(self, endpoint: Endpoint, reason: str) -> None:
        with self.lock:
            if endpoint.status == "Creating":
                endpoint.status, endpoint.failure_reason = "Failed", reason
                endpoint.last_modified_time = time.time()
                self._save(endpoint)

    def updated(self, endpoint: Endpoint, config: EndpointConfig, runtime: Any) -> Any:
        with self.lock:
            if endpoint.status != "Updating":
                return runtime  # deleted meanwhile: the new runtime is not used
            old, endpoint.runtime = endpoint.runtime, runtime
            endpoint.config_name = config.name
            endpoint.variants = copy.deepcopy(config.request["ProductionVariants"])
            endpoint.status = "InService"
            endpoint.last_modified_time = time.time()
            self._save(endpoint)
            return old

    def update_failed(self, endpoint: Endpoint, config: EndpointConfig, reason: str) -> None:
        with self.lock:
            if endpoint.status == "Updating":
                endpoint.status = "InService"
                endpoint.failure_reason = f"The update to {config.name} failed, the endpoint serves as before: {reason}"
                endpoint.last_modified_time = time.time()
                self._save(endpoint)

    def deleted(self, endpoint: Endpoint) -> None:
        with self.lock:
            if self.endpoints.get(endpoint.name) is endpoint:
                self._forget(endpoint)
