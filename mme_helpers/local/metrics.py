"""Endpoint metrics, published to the local CloudWatch as SageMaker publishes them on AWS.

Datapoints are aggregated in memory (count, sum, min, max) and sent once a second as statistic
sets, so the request path only adds to a few numbers. In the AWS-like profile (``aws_like``) they are
aggregated per minute instead, stamped with the minute's start, and sent only once the minute has
ended plus a delay, as SageMaker's 1-minute metrics reach CloudWatch on AWS.
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
    """``period_s=1``: every second's datapoints sent at once. ``period_s=60``: per minute, each minute's
    sent ``delay_s`` after it ends (gauges read every ``interval`` into the minute's statistic set)."""

    def __init__(self, clients, interval: float = 1.0, period_s: int = 1, delay_s: float = 0.0):
        self.clients = clients
        self.interval = interval
        self.period_s = period_s
        self.delay_s = delay_s
        self.lock = threading.Lock()
        # (period start or None: sent at the next flush, endpoint, variant) -> (name, unit) -> [count, sum, min, max]
        self.pending: dict[tuple[float | None, str, str], dict[tuple[str, str], list[float]]] = {}
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
            where = (self._period_start(time.time()), endpoint, variant)
            with lock:
                self._add(where, name, unit, value)

        self.recorders[key] = record
        return record

    def record_all(self, endpoint: str, variant: str, points: list[tuple[str, float, str]]) -> None:
        """One request's datapoints ``(name, value, unit)`` at once: the request path takes the lock
        and reads the clock once, not once per metric."""
        where = (self._period_start(time.time()), endpoint, variant)
        with self.lock:
            for name, value, unit in points:
                self._add(where, name, unit, value)

    def _period_start(self, when: float) -> float | None:
        return None if self.period_s <= 1 else when // self.period_s * self.period_s

    def _add(self, where: tuple[float | None, str, str], name: str, unit: str, value: float) -> None:
        """Under the lock: one value into its metric's statistic set for that period and endpoint."""
        series = self.pending.get(where)
        if series is None:
            series = self.pending[where] = {}
        stats = series.get((name, unit))
        if stats is None:
            series[(name, unit)] = [1, value, value, value]
        else:
            stats[0] += 1
            stats[1] += value
            if value < stats[2]:
                stats[2] = value
            if value > stats[3]:
                stats[3] = value

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
        """Send what is due: everything (per second), or the minutes that ended ``delay_s`` ago."""
        now = time.time()
        with self.lock:
            gauges = list(self.gauges.items())
        aggregated = self.period_s > 1
        if aggregated:  # a gauge's readings go into its minute like any other datapoint
            for (endpoint, variant, name), read in gauges:
                values = _read(read)
                with self.lock:
                    for value in values:
                        self._add((self._period_start(now), endpoint, variant), name, "None", value)
            gauges = []
        with self.lock:
            due = [where for where in self.pending if where[0] is None or where[0] + self.period_s + self.delay_s <= now]
            pending = [(where, self.pending.pop(where)) for where in due]
        data: dict[str, list[dict]] = {}
        for (start, endpoint, variant), series in pending:
            for (name, unit), (count, total, low, high) in series.items():
                data.setdefault(_namespace(name), []).append(
                    {
                        "MetricName": name,
                        "Dimensions": _dimensions(endpoint, variant),
                        "Timestamp": now if start is None else start,
                        "Unit": unit,
                        "StatisticValues": {"SampleCount": count, "Sum": total, "Minimum": low, "Maximum": high},
                    }
                )
        for (endpoint, variant, name), read in gauges:
            values = _read(read)
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


def _read(read: Callable[[], float | list[float]]) -> list[float]:
    """A gauge's values now (none if it cannot say)."""
    try:
        values = read()
        return [float(v) for v in values] if isinstance(values, list) else [float(values)]
    except Exception:
        return []


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
