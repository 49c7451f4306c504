"""SageMaker resources on disk: one JSON record a resource (its fields and its tags) in the
service's state store, so that they survive ``stop``/``start``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from typing import Any, Protocol

from .resources import Endpoint, EndpointConfig, Model, TrainingJob

Resource = TrainingJob | Model | EndpointConfig | Endpoint

KINDS: dict[type, str] = {
    TrainingJob: "training-jobs",
    Model: "models",
    EndpointConfig: "endpoint-configs",
    Endpoint: "endpoints",
}
NOT_STORED = {"runtime"}  # an endpoint's serving side is rebuilt, never stored


class ResourceStore(Protocol):
    def save_resource(self, kind: str, name: str, record: dict[str, Any]) -> None: ...

    def drop_resource(self, kind: str, name: str) -> None: ...

    def resources(self, kind: str) -> list[dict[str, Any]]: ...


class ResourcePersistence:
    """Writes resources through to a store (or nowhere, without one). The backend calls it under
    its lock, so that the records land in the order of the changes."""

    def __init__(self, store: ResourceStore | None):
        self.store = store

    def save(self, resource: Resource, tags: dict[str, str]) -> None:
        if self.store is None:
            return
        record = {f.name: getattr(resource, f.name) for f in fields(resource) if f.name not in NOT_STORED}
        record["tags"] = dict(tags)
        self.store.save_resource(KINDS[type(resource)], resource.name, record)

    def drop(self, resource: Resource) -> None:
        if self.store is not None:
            self.store.drop_resource(KINDS[type(resource)], resource.name)

    def load(self) -> Iterator[tuple[Resource, dict[str, str]]]:
        """Every stored resource with its tags; fields the record lacks take their defaults."""
        if self.store is None:
            return
        for cls, kind in KINDS.items():
            for record in self.store.resources(kind):
                tags = record.pop("tags", {}) or {}
                yield cls(**{f.name: record[f.name] for f in fields(cls) if f.name in record}), tags
