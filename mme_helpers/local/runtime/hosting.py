"""Endpoints being served: what ``CreateEndpoint`` provisions and ``DeleteEndpoint`` tears down."""

from __future__ import annotations

import asyncio
import concurrent.futures
import shutil
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ...sagemaker_hosting import (
    DEFAULT_DISK_BYTES,
    XGBOOST_IMAGE,
    InstanceLoad,
    busy_at,
    instance_index,
    model_memory_budget,
    model_server_worker_bytes,
    split_s3_uri,
)
from ..metrics import InstanceGauge
from .artifacts import ArtifactError, LoadedModel, extract, load_models
from .registry import ModelNotFound, ModelRegistry, RegistryConfig

MEMORY_OVERRIDE = "MME_LOCAL_MEMORY_BUDGET_MB"
DISK_OVERRIDE = "MME_LOCAL_DISK_BUDGET_MB"
WORKER_OVERRIDE = "MME_LOCAL_WORKER_MB"
WAIT_OVERRIDE = "MME_LOCAL_MODEL_WAIT_SECONDS"  # how long a request waits for a loading model (AWS: 60 s)
MB = 10**6  # the MME_LOCAL_*_MB overrides are decimal megabytes, as every table of the notebooks prints MB
CACHE_FOLDER = "endpoints"  # <home>/endpoints/<endpoint>-<id>: each runtime's disk cache


def remove_caches(home: Path) -> None:
    """Every endpoint's disk cache: at start, before any runtime exists (a killed service leaves
    its caches behind), and at ``reset``."""
    shutil.rmtree(home / CACHE_FOLDER, ignore_errors=True)


class S3Artifacts:
    """Model artifacts under an S3 prefix: the target model is ``prefix + relative key``."""

    def __init__(self, s3, model_data_url: str):
        self.s3 = s3
        self.bucket, self.prefix = split_s3_uri(model_data_url)

    def fetch(self, target: str) -> bytes:
        key = self.prefix + target
        try:
            return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except (self.s3.exceptions.NoSuchKey, self.s3.exceptions.NoSuchBucket):
            raise ModelNotFound(self.bucket, key) from None


class Served(NamedTuple):
    """A request being served: by which instance, with which model, and whether it was a cache hit."""

    instance: int
    model: LoadedModel
    hit: bool


class Serving:
    """The hold ``EndpointRuntime.serving`` gives: a class rather than a generator, as it is on the
    path of every request."""

    __slots__ = ("runtime", "target", "number", "registry")

    def __init__(self, runtime: EndpointRuntime, target: str):
        self.runtime = runtime
        self.target = target

    async def __aenter__(self) -> Served:
        runtime = self.runtime
        number = runtime.instance_for(self.target)
        registry = runtime.instances[number]
        runtime.in_flight[number] += 1
        try:
            model = registry.acquire_resident(self.target)  # the warm path: nothing to await
            hit = model is not None
            if not hit:
                model = await registry.load_and_hold(self.target)
        except BaseException:
            runtime.in_flight[number] -= 1
            raise
        self.number, self.registry = number, registry
        return Served(number, model, hit)

    async def __aexit__(self, *exc_info) -> None:
        try:
            self.registry.release(self.target)
        finally:
            self.runtime.in_flight[self.number] -= 1


@dataclass
class EndpointRuntime:
    """The serving side of one endpoint (one production variant). A multi-model endpoint has one
    model cache per instance, each with the instance's memory; a request goes to an instance that
    has its model loaded, as on AWS (``sagemaker_hosting.instance_index``), so a model is loaded on a
    second instance only when the first is busy. Everything here belongs to the event loop."""

    name: str
    region: str
    variant: str
    multi_model: bool
    default_accept: str | None
    instances: list[ModelRegistry] = field(default_factory=list)  # multi-model endpoints
    model: LoadedModel | None = None  # single-model endpoints
    cache_dir: Path | None = None
    busy: int = 1  # requests in flight at which an instance counts as busy (sagemaker_hosting.busy_at)
    in_flight: Counter[int] = field(default_factory=Counter)  # instance -> requests routed there, not yet answered

    def instance_for(self, target: str) -> int:
        """The instance that serves a request for ``target`` now, from what each one holds and serves."""
        if len(self.instances) == 1:
            return 0  # the common case, on every request: nothing to choose
        state = [
            InstanceLoad(
                holds=target in registry.memory or target in registry.loading,
                in_flight=self.in_flight[number],
                models=len(registry.memory) + len(registry.loading),
            )
            for number, registry in enumerate(self.instances)
        ]
        return instance_index(target, state, self.busy)

    def serving(self, target: str) -> Serving:
        """``async with runtime.serving(target) as served``: route a request for ``target``, acquire
        its model on that instance and hold it (and the instance's count of requests in flight)
        until the request is answered. Raises what ``ModelRegistry.acquire`` raises."""
        return Serving(self, target)

    def snapshot(self) -> dict:
        """Every instance's cache state, models tagged with their instance."""
        if not self.instances:
            return {}
        states = [instance.snapshot() for instance in self.instances]
        merged = {
            "instances": len(states),
            "memory_budget_bytes": states[0]["memory_budget_bytes"],
            "disk_budget_bytes": states[0]["disk_budget_bytes"],
            "worker_bytes": states[0]["worker_bytes"],
            "memory_used_bytes": sum(state["memory_used_bytes"] for state in states),
            "disk_used_bytes": sum(state["disk_used_bytes"] for state in states),
            "loaded_models": [target for state in states for target in state["loaded_models"]],
            "models": [],
        }
        for number, state in enumerate(states):
            merged["models"] += [{**model, "instance": number} for model in state["models"]]
        return merged


class Hosting:
    """Provisions endpoint runtimes from endpoint configs (the ``HostingService`` of the backend)."""

    def __init__(self, clients, home: Path, region: str, metrics, loop_getter, honour_overrides: bool = True):
        self.clients = clients
        # False in the AWS-like profile: AWS's container never reads the MME_LOCAL_* variables, so an
        # endpoint holds what its instance type's memory holds, with the worker charge per model
        self.honour_overrides = honour_overrides
        self.region = region
        self.home = home
        self.metrics = metrics
        self.loop_getter = loop_getter
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="model-load")

    def provision(self, endpoint, config, models: dict[str, Any]) -> EndpointRuntime:
        variants = config.request["ProductionVariants"]
        if len(variants) != 1:
            raise ValueError("local mode serves endpoints with exactly one production variant")
        variant = variants[0]
        if "ServerlessConfig" in variant:
            raise ValueError("local mode does not emulate serverless endpoints; give an instance type")
        model = models.get(variant["ModelName"])
        if model is None:
            raise ValueError(f"the model {variant['ModelName']} of this endpoint configuration no longer exists")
        container = model.containers[0]
        image = container.get("Image", "")
        image_match = XGBOOST_IMAGE.search(image)
        if not image_match:
            raise ValueError(
                f"local mode serves only the built-in XGBoost image (…/sagemaker-xgboost:<version>); got '{image}'"
            )
        environment = container.get("Environment", {}) or {}
        if not self.honour_overrides:
            environment = {name: value for name, value in environment.items() if not name.startswith("MME_LOCAL_")}
        memory = (
            round(float(environment[MEMORY_OVERRIDE]) * MB)
            if MEMORY_OVERRIDE in environment
            else model_memory_budget(variant.get("InstanceType", ""))
        )
        disk = round(float(environment[DISK_OVERRIDE]) * MB) if DISK_OVERRIDE in environment else DEFAULT_DISK_BYTES
        # An instance type's memory is shared with a model-server worker per loaded model, as on AWS (the
        # worker of this image version's container); an explicit budget is for the models alone (what this
        # process really holds).
        worker_default = 0 if MEMORY_OVERRIDE in environment else model_server_worker_bytes(image_match["version"]) / MB
        worker = round(float(environment.get(WORKER_OVERRIDE, worker_default)) * MB)
        multi_model = container.get("Mode", "SingleModel") == "MultiModel"
        cache_dir = self.home / CACHE_FOLDER / f"{endpoint.name}-{uuid.uuid4().hex[:8]}"
        runtime = EndpointRuntime(
            name=endpoint.name,
            region=self.region,
            variant=variant["VariantName"],
            multi_model=multi_model,
            default_accept=environment.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"),
            cache_dir=cache_dir,
            busy=busy_at(variant.get("InstanceType", "")),
        )
        model_data_url = container.get("ModelDataUrl", "")
        if multi_model:
            if not model_data_url.startswith("s3://"):
                raise ValueError(f"a multi-model endpoint needs ModelDataUrl to be an S3 prefix; got '{model_data_url}'")
            cache_enabled = (container.get("MultiModelConfig") or {}).get("ModelCacheSetting", "Enabled") != "Disabled"
            record_metric = self.metrics.recorder(endpoint.name, runtime.variant)
            count = max(1, int(variant.get("InitialInstanceCount", 1)))
            loaded = InstanceGauge(count)  # each registry pushes its count; the metrics thread reads this
            for number in range(count):
                runtime.instances.append(
                    ModelRegistry(
                        source=S3Artifacts(self.clients.s3, model_data_url),
                        cache_dir=cache_dir / f"instance-{number}",
                        config=RegistryConfig(
                            memory_budget=memory,
                            disk_budget=disk,
                            cache_enabled=cache_enabled,
                            load_wait_limit=float(environment.get(WAIT_OVERRIDE, 60)),
                            worker_bytes=worker,
                            image_version=image_match["version"],
                        ),
                        executor=self.executor,
                        record_metric=record_metric,
                        report_loaded=loaded.setter(number),
                    )
                )
            self.metrics.add_gauge(endpoint.name, runtime.variant, "LoadedModelCount", loaded.read)
        else:
            runtime.model = self._load_single(model_data_url, cache_dir, disk, image_match["version"])
        return runtime

    def _load_single(self, model_data_url: str, cache_dir: Path, disk_budget: int, image_version: str) -> LoadedModel:
        if not model_data_url:
            raise ValueError("the model has no ModelDataUrl")
        bucket, key = split_s3_uri(model_data_url)
        try:
            data = self.clients.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except (self.clients.s3.exceptions.NoSuchKey, self.clients.s3.exceptions.NoSuchBucket):
            raise ValueError(
                f"Failed to download model data(bucket: {bucket}, key: {key}). Please ensure that there is an "
                "object located at the URL and that the role passed to CreateModel has permissions to download "
                "the model."
            ) from None
        try:
            extract(data, cache_dir / "model", disk_budget)
            return load_models(cache_dir / "model", image_version)
        except ArtifactError as exc:
            raise ValueError(f"the model could not be loaded: {exc}") from exc

    def teardown(self, runtime: EndpointRuntime, metrics: bool = True) -> None:
        """Close a runtime's caches and delete its disk cache; ``metrics=False`` keeps the
        endpoint's metrics (an update replaces the runtime of an endpoint that lives on)."""
        if metrics:
            self.metrics.remove_endpoint(runtime.name)
        loop = self.loop_getter()
        for registry in runtime.instances:
            if loop is not None and loop.is_running() and not _on_loop(loop):
                # a registry belongs to the event loop: close it there
                asyncio.run_coroutine_threadsafe(_close(registry), loop).result(timeout=10)
            else:
                registry.close()
            registry.disk.close()  # the folders are deleted here, off the loop
        if runtime.cache_dir is not None:
            shutil.rmtree(runtime.cache_dir, ignore_errors=True)


async def _close(registry: ModelRegistry) -> None:
    registry.close()


def _on_loop(loop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
