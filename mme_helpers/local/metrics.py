"""Endpoint metrics, published to the local CloudWatch as SageMaker publishes them on AWS.

Datapoints are aggregated in memory (count, sum, min, max) and sent once a second as statistic
sets, so the request path only adds to a few numbers.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable

ENDPOINT_NAMESPACE = "AWS/SageMaker"
INSTANCE_NAMESPACE = "/aws/sagemaker/Endpoints"
INSTANCE_METRICS = {"LoadedModelCount", "CPUUtilization", "MemoryUtilization", "DiskUtilization"}


class MetricsPublisher:
    def __init__(self, clients, interval: float = 1.0):
        self.clients = clients
        self.interval = interval
        self.lock = threading.Lock()
        self.pending: dict[tuple[str, str, str, str], list[float]] = {}
        self.gauges: dict[tuple[str, str, str], Callable[[], float | list[float]]] = {}
        self.recorders: dict[tuple[str, str], Callable[[str, float, str], None]] = {}
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="metrics", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop publishing, and wait for a publication under way (the service is stopping: the
        local CloudWatch goes down with it, so what is pending has nowhere to go)."""
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join(timeout)

    def recorder(self, endpoint: str, variant: str) -> Callable[[str, float, str], None]:
        """A function that records one datapoint of one endpoint's metric."""
        key = (endpoint, variant)
        found = self.recorders.get(key)
        if found is not None:
            return found
        lock = self.lock

        def record(name: str, value: float, unit: str) -> None:
            slot = (endpoint, variant, name, unit)
            with lock:
                stats = self.pending.get(slot)
                if stats is None:
                    self.pending[slot] = [1, value, value, value]
                else:
                    stats[0] += 1
                    stats[1] += value
                    if value < stats[2]:
                        stats[2] = value
                    if value > stats[3]:
                        stats[3] = value

        self.recorders[key] = record
        return record

    def add_gauge(self, endpoint: str, variant: str, name: str, read: Callable[[], float | list[float]]) -> None:
        """A value read every interval; a list gives one datapoint each (one per instance)."""
        with self.lock:
            self.gauges[(endpoint, variant, name)] = read

    def remove_endpoint(self, endpoint: str) -> None:
        self.flush()
        with self.lock:
            for key in [k for k in self.gauges if k[0] == endpoint]:
                del self.gauges[key]
            for key in [k for k in self.recorders if k[0] == endpoint]:
                del self.recorders[key]

    def _run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.flush()
            _return_free_memory()

    def flush(self) -> None:
        with self.lock:
            pending, self.pending = self.pending, {}
            gauges = list(self.gauges.items())
        now = time.time()
        data: dict[str, list[dict]] = {}
        for (endpoint, variant, name, unit), (count, total, low, high) in pending.items():
            data.setdefault(_namespace(name), []).append(
                {
                    "MetricName": name,
                    "Dimensions": _dimensions(endpoint, variant),
                    "Timestamp": now,
                    "Unit": unit,
                    "StatisticValues": {"SampleCount": count, "Sum": total, "Minimum": low, "Maximum": high},
                }
            )
        for (endpoint, variant, name), read in gauges:
            try:
                values = read()
                values = [float(v) for v in values] if isinstance(values, list) else [float(values)]
            except Exception:
                continue
            for value in values:
                data.setdefault(_namespace(name), []).append(
                    {
                        "MetricName": name,
                        "Dimensions": _dimensions(endpoint, variant),
                        "Timestamp": now,
                        "Unit": "None",
                        "Value": value,
                    }
                )
        for namespace, items in data.items():
            for start in range(0, len(items), 500):
                try:
                    self.clients.cloudwatch.put_metric_data(Namespace=namespace, MetricData=items[start : start + 500])
                except Exception:
                    traceback.print_exc()


class InstanceGauge:
    """One value per instance of an endpoint, set from the event loop (each model registry pushes
    its loaded-model count) and read by the metrics thread, which never looks into a registry."""

    def __init__(self, instances: int):
        self._lock = threading.Lock()
        self._values = [0.0] * instances

    def setter(self, instance: int) -> Callable[[float], None]:
        def set_value(value: float) -> None:
            with self._lock:
                self._values[instance] = float(value)

        return set_value

    def read(self) -> list[float]:
        with self._lock:
            return list(self._values)


def _namespace(name: str) -> str:
    return INSTANCE_NAMESPACE if name in INSTANCE_METRICS else ENDPOINT_NAMESPACE


def _dimensions(endpoint: str, variant: str) -> list[dict[str, str]]:
    return [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}]


def _return_free_memory() -> None:
    """Hand memory freed by evicted models back to the OS (glibc keeps it otherwise), so that the
    resident size follows the cache. Once a second, from this thread; a no-op off glibc."""
    global _MALLOC_TRIM
    if _MALLOC_TRIM is None:
        try:
            import ctypes

            _MALLOC_TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _MALLOC_TRIM = False
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)


_MALLOC_TRIM = None
