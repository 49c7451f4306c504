"""The models of one instance of a multi-model endpoint: in memory, on their way, and their stats.

``acquire`` returns a loaded model: a warm hit from memory, or a cold load (download to the disk
cache, unpack, load) that every concurrent request for the same model shares. Memory has a byte
budget and evicts its least recently used models; a model serving a request is never evicted. As
on AWS, a cached model is served until evicted even if its S3 object was overwritten.

Who touches what (the README's concurrency table): everything here belongs to the event loop and
has no lock; the model-load threads run ``_fetch_and_load``, which uses only the artifact source
and the disk cache (its own object, with its own lock); nothing here is read by another thread (the
loaded-model count is pushed to the metrics through ``report_loaded``).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .artifacts import ArtifactError, LoadedModel, load_models
from .disk_cache import CachedCopy, DiskCache, DiskFull


class ModelNotFound(Exception):
    """The target model's object is not in S3."""

    def __init__(self, bucket: str, key: str):
        super().__init__(bucket, key)
        self.bucket, self.key = bucket, key


class ModelLoadError(Exception):
    """The container could not load the model (a 503 from the container, a 424 to the caller)."""

    status = 503


class InsufficientMemory(ModelLoadError):
    status = 507


class InsufficientStorage(ModelLoadError):
    """The instance's disk has no room for the model, even after deleting every unused copy."""

    status = 507


class ModelNotReady(Exception):
    """The model is still loading after the wait limit; the load goes on in the background."""


class ArtifactSource(Protocol):
    def fetch(self, target: str) -> bytes: ...


@dataclass
class ModelStats:
    """What AWS does not show per model: hits, misses, loads and their times. Kept only for models
    whose artifact exists (a request for a name that is not in S3 leaves nothing behind)."""

    target: str
    hits: int = 0
    misses: int = 0
    loads: int = 0
    evictions: int = 0
    download_ms: float | None = None
    load_ms: float | None = None
    size_bytes: int = 0
    memory_bytes: int = 0
    last_used: float = 0.0
    state: str = "loading"  # loading, in memory, unloaded, failed (the disk cache tells on disk / evicted)


@dataclass
class _Resident:
    model: LoadedModel
    charge: int
    copy: CachedCopy
    in_use: int = 0


@dataclass
class _Load:
    """A load in flight and the requests waiting for it. The waiters are pinned (counted as in
    use) before they are woken, so that no other load can evict the model in between."""

    future: asyncio.Future
    waiters: int = 0
    misses: int = 0
    last_used: float = 0.0
    pinned: bool = False


@dataclass
class LoadTimes:
    download_s: float = 0.0
    load_s: float = 0.0
    from_disk: bool = False


@dataclass
class RegistryConfig:
    memory_budget: int
    disk_budget: int  # also the most one artifact may unpack to
    cache_enabled: bool = True
    load_wait_limit: float = 60.0
    # Charged for each loaded model on top of the model itself: on AWS every loaded model has its own
    # model-server worker process, which takes far more memory than a small model (instance_types).
    worker_bytes: int = 0
    image_version: str = ""  # the XGBoost container's: models are read as its XGBoost reads them


class ModelRegistry:
    def __init__(
        self,
        source: ArtifactSource,
        cache_dir: Path,
        config: RegistryConfig,
        executor,
        record_metric: Callable[[str, float, str], None] = lambda name, value, unit: None,
        report_loaded: Callable[[int], None] = lambda count: None,
    ):
        self.source = source
        self.config = config
        self.executor = executor
        self.record_metric = record_metric
        self.report_loaded = report_loaded
        self.disk = DiskCache(cache_dir, config.disk_budget)
        self.memory: OrderedDict[str, _Resident] = OrderedDict()
        self.memory_used = 0
        self.loading: dict[str, _Load] = {}
        self.stats: dict[str, ModelStats] = {}
        self.tasks: set[asyncio.Task] = set()  # loads in flight, kept until done
        self.closed = False

    # the request path ------------------------------------------------------------------------------

    def acquire_resident(self, target: str) -> LoadedModel | None:
        """The model if it is in memory (a cache hit, held: call ``release`` when done), else None,
        without waiting: the warm path of every request, with no coroutine to run."""
        resident = self.memory.get(target)
        if resident is None:
            return None
        self.memory.move_to_end(target)
        resident.in_use += 1
        stats = self.stats[target]
        stats.hits += 1
        stats.last_used = time.time()
        return resident.model

    async def acquire(self, target: str) -> tuple[LoadedModel, bool]:
        """The loaded model and whether it was a cache hit; call ``release`` when done."""
        model = self.acquire_resident(target)
        if model is not None:
            return model, True
        return await self.load_and_hold(target), False

    async def load_and_hold(self, target: str) -> LoadedModel:
        """A model not in memory: start its load or join the one under way, and wait for it (a cache
        miss, held once loaded: call ``release`` when done)."""
        load = self.loading.get(target)
        if load is None:
            future = asyncio.get_running_loop().create_future()
            future.add_done_callback(lambda f: f.cancelled() or f.exception())
            load = self.loading[target] = _Load(future)
            task = asyncio.ensure_future(self._load(target, load))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        load.waiters += 1
        load.misses += 1
        load.last_used = time.time()
        waited = time.perf_counter()
        try:
            model = await asyncio.wait_for(asyncio.shield(load.future), self.config.load_wait_limit)
        except TimeoutError:
            self._leave(target, load)
            raise ModelNotReady(target) from None
        except BaseException:
            self._leave(target, load)
            raise
        finally:
            self.record_metric("ModelLoadingWaitTime", (time.perf_counter() - waited) * 1e6, "Microseconds")
        return model

    def _leave(self, target: str, load: _Load) -> None:
        """A waiter gives up (timeout, failure, cancelled request): undo its pin or its place."""
        if load.pinned:
            self.release(target)
        else:
            load.waiters -= 1

    def release(self, target: str) -> None:
        resident = self.memory.get(target)
        if resident is None:
            return
        resident.in_use = max(0, resident.in_use - 1)
        if not self.config.cache_enabled and resident.in_use == 0:
            self.unload(target)
            self.executor.submit(self.disk.discard, resident.copy)  # deleted by a model-load thread

    # loading -----------------------------------------------------------------------------------------

    async def _load(self, target: str, load: _Load) -> None:
        loop = asyncio.get_running_loop()
        try:
            model, copy, times = await loop.run_in_executor(self.executor, self._fetch_and_load, target)
        except ModelNotFound as exc:
            load.future.set_exception(exc)  # no stats: the name may be anything a caller sent
            self.loading.pop(target, None)
            return
        except Exception as exc:
            self._stats(target, load).state = "failed"
            load.future.set_exception(exc)
            self.loading.pop(target, None)
            return
        stats = self._stats(target, load)
        try:
            if self.closed:
                raise ModelLoadError("the endpoint is being deleted")
            charge = self._charge(model)
            self._make_room(charge, target)
        except ModelLoadError as exc:
            stats.state = "failed"
            load.future.set_exception(exc)
            self.loading.pop(target, None)
            return
        self.memory[target] = _Resident(model, charge, copy, in_use=load.waiters)  # pinned before they wake
        load.pinned = True
        self.memory_used += charge
        self.report_loaded(len(self.memory))
        stats.loads += 1
        stats.size_bytes = model.size_bytes
        stats.memory_bytes = charge
        stats.load_ms = times.load_s * 1000
        stats.state = "in memory"
        if not times.from_disk:
            stats.download_ms = times.download_s * 1000
            self.record_metric("ModelDownloadingTime", times.download_s * 1e6, "Microseconds")
        self.record_metric("ModelLoadingTime", times.load_s * 1e6, "Microseconds")
        load.future.set_result(model)
        self.loading.pop(target, None)

    def _stats(self, target: str, load: _Load) -> ModelStats:
        """The model's stats, created once its artifact is known to exist; the load's misses join them."""
        stats = self.stats.get(target)
        if stats is None:
            stats = self.stats[target] = ModelStats(target)
        stats.misses += load.misses
        stats.last_used = max(stats.last_used, load.last_used)
        return stats

    def _fetch_and_load(self, target: str) -> tuple[LoadedModel, CachedCopy, LoadTimes]:
        """Runs in a model-load thread: the disk cache, the download and the load. With the cache
        disabled nothing is reused from disk (AWS deletes a model right after its use)."""
        times = LoadTimes()
        copy = self.disk.checkout(target) if self.config.cache_enabled else None
        if copy is None:
            started = time.perf_counter()
            data = self.source.fetch(target)
            try:
                copy = self.disk.store(target, data)
            except DiskFull as exc:
                raise InsufficientStorage(str(exc)) from exc
            except ArtifactError as exc:
                raise ModelLoadError(str(exc)) from exc
            times.download_s = time.perf_counter() - started
        else:
            times.from_disk = True
        started = time.perf_counter()
        try:
            model = load_models(copy.folder, self.config.image_version)
        except ArtifactError as exc:
            raise ModelLoadError(str(exc)) from exc
        finally:
            self.disk.checkin(copy)
        times.load_s = time.perf_counter() - started
        return model, copy, times

    # memory ----------------------------------------------------------------------------------------------

    def _charge(self, model: LoadedModel) -> int:
        """What a loaded model takes from the budget: itself and its model-server worker."""
        return model.memory_bytes + self.config.worker_bytes

    def _make_room(self, size: int, target: str) -> None:
        budget = self.config.memory_budget
        if size > budget:
            raise InsufficientMemory(
                f"model {target} needs {size:,} bytes of memory; the endpoint's budget is {budget:,} bytes"
            )
        for candidate in list(self.memory):
            if self.memory_used + size <= budget:
                return
            if self.memory[candidate].in_use == 0:
                self.unload(candidate)
        if self.memory_used + size > budget:
            raise InsufficientMemory(
                f"no memory for model {target}: every loaded model is serving a request ({self.memory_used:,} "
                f"of {budget:,} bytes in use)"
            )

    def unload(self, target: str) -> bool:
        """Evict a model from memory (its disk copy stays). Returns whether it was loaded."""
        started = time.perf_counter()
        resident = self.memory.pop(target, None)
        if resident is None:
            return False
        self.memory_used -= resident.charge
        self.report_loaded(len(self.memory))
        stats = self.stats[target]
        stats.evictions += 1
        stats.state = "unloaded"
        del resident
        self.record_metric("ModelUnloadingTime", (time.perf_counter() - started) * 1e6, "Microseconds")
        return True

    # inspection and shutdown --------------------------------------------------------------------------

    def state_of(self, stats: ModelStats, on_disk: set[str]) -> str:
        if stats.state in ("unloaded", "failed") and stats.target in on_disk:
            return "on disk"
        return "evicted" if stats.state == "unloaded" else stats.state

    def snapshot(self) -> dict:
        on_disk, disk_used = self.disk.holding()
        return {
            "memory_budget_bytes": self.config.memory_budget,
            "memory_used_bytes": self.memory_used,
            "worker_bytes": self.config.worker_bytes,
            "disk_budget_bytes": self.config.disk_budget,
            "disk_used_bytes": disk_used,
            "loaded_models": list(self.memory),
            "models": [{**vars(s), "state": self.state_of(s, on_disk)} for s in self.stats.values()],
        }

    def close(self) -> None:
        """Forget the models in memory (on the loop); the disk cache is deleted by ``disk.close``,
        off the loop. A load still in flight ends with "the endpoint is being deleted"."""
        self.closed = True
        self.memory.clear()
        self.memory_used = 0
        self.report_loaded(0)
