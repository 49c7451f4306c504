"""The slow half of CreateEndpoint, UpdateEndpoint and DeleteEndpoint: provisioning a runtime and
tearing one down, on a few threads of its own rather than one thread a call.

The work reports each outcome back to the backend (``EndpointStates``), which changes the
endpoint's state under its lock; this module never touches an endpoint's fields itself.
"""

from __future__ import annotations

import concurrent.futures
from typing import Any, Protocol

from .resources import Endpoint, EndpointConfig, Model

WORKERS = 4  # endpoints provisioned or torn down at once; more calls wait in the queue, in order


class HostingService(Protocol):
    def provision(self, endpoint: Endpoint, config: EndpointConfig, models: dict[str, Model]) -> Any: ...

    def teardown(self, runtime: Any, metrics: bool = True) -> None: ...


class EndpointStates(Protocol):
    """The state changes the lifecycle work reports; the backend makes each under its lock."""

    def provisioned(self, endpoint: Endpoint, runtime: Any) -> bool:
        """Whether the endpoint took the runtime (False: it was deleted meanwhile)."""
        ...

    def provisioning_failed(self, endpoint: Endpoint, reason: str) -> None: ...

    def updated(self, endpoint: Endpoint, config: EndpointConfig, runtime: Any) -> Any:
        """The runtime left over: the replaced one, or the new one if the endpoint moved on."""
        ...

    def update_failed(self, endpoint: Endpoint, config: EndpointConfig, reason: str) -> None: ...

    def deleted(self, endpoint: Endpoint) -> None: ...


class EndpointLifecycle:
    """Runs provisioning and tear-down on a small pool owned here; ``shutdown`` on service stop."""

    def __init__(self, hosting: HostingService | None, states: EndpointStates, workers: int = WORKERS):
        self.hosting = hosting
        self.states = states
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="endpoint")

    def provision(self, endpoint: Endpoint, config: EndpointConfig, models: dict[str, Model]) -> concurrent.futures.Future:
        return self.executor.submit(self._provision, endpoint, config, models)

    def update(self, endpoint: Endpoint, config: EndpointConfig, models: dict[str, Model]) -> concurrent.futures.Future:
        return self.executor.submit(self._update, endpoint, config, models)

    def delete(self, endpoint: Endpoint, runtime: Any) -> concurrent.futures.Future:
        return self.executor.submit(self._delete, endpoint, runtime)

    def shutdown(self, wait: bool = False) -> None:
        """Drop the work not yet started; with ``wait``, also wait for the work under way (not from
        the event loop: a tear-down waits for the loop)."""
        self.executor.shutdown(wait=wait, cancel_futures=True)

    # the work -----------------------------------------------------------------------------------

    def _provision(self, endpoint: Endpoint, config: EndpointConfig, models: dict[str, Model]) -> None:
        try:
            runtime = self.hosting.provision(endpoint, config, models) if self.hosting else None
        except Exception as exc:  # the reason goes to the user, as AWS's FailureReason does
            self.states.provisioning_failed(endpoint, str(exc))
            return
        if not self.states.provisioned(endpoint, runtime) and runtime is not None and self.hosting:
            self.hosting.teardown(runtime)  # deleted meanwhile; outside the lock: it flushes metrics over HTTP

    def _update(self, endpoint: Endpoint, config: EndpointConfig, models: dict[str, Model]) -> None:
        try:
            runtime = self.hosting.provision(endpoint, config, models) if self.hosting else None
        except Exception as exc:
            self.states.update_failed(endpoint, config, str(exc))
            return
        leftover = self.states.updated(endpoint, config, runtime)
        if leftover is not None and self.hosting is not None:  # outside the lock: tear-down waits for the event loop
            self.hosting.teardown(leftover, metrics=False)

    def _delete(self, endpoint: Endpoint, runtime: Any) -> None:
        try:
            if runtime is not None and self.hosting:
                self.hosting.teardown(runtime)
        finally:
            self.states.deleted(endpoint)
