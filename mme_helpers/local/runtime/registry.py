"""The models of one multi-model endpoint: on disk, in memory, and on their way.

``acquire`` returns a loaded model: a warm hit from memory, or a cold load (download to the disk
cache, unpack, load) that every concurrent request for the same model shares. Memory and disk each
have a byte budget and evict their least recently used models; a model serving a request is never
evicted. As on AWS, a cached model is served until evicted even if its S3 object was overwritten.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .artifacts import ArtifactError, LoadedModel, extract, load_models


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
    """What AWS does not show per model: hits, misses, loads and their times."""

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
    state: str = "new"  # loading, in memory, on disk, evicted


@dataclass
class _Resident:
    model: LoadedModel
    in_use: int = 0


@dataclass
class _Load:
    """A load in flight and the requests waiting for it. The waiters are pinned (counted as in
    use) before they are woken, so that no other load can evict the model in between."""

    future: asyncio.Future
    waiters: int = 0
    pinned: bool = False


@dataclass
class _OnDisk:
    folder: Path
    size: int


@dataclass
class LoadTimes:
    download_s: float = 0.0
    load_s: float = 0.0
    from_disk: bool = False


@dataclass
class RegistryConfig:
    memory_budget: int
    disk_budget: int
    cache_enabled: bool = True
    load_wait_limit: float = 60.0
    max_artifact_bytes: int = 1 << 30
    # Charged for each loaded model on top of the model itself: on AWS every loaded model has its own
    # model-server worker process, which takes far more memory than a small model (instance_types).
    worker_bytes: int = 0


class ModelRegistry:
    def __init__(
        self,
        source: ArtifactSource,
        cache_dir: Path,
        config: RegistryConfig,
        executor,
        record_metric: Callable[[str, float, str], None] = lambda name, value, unit: None,
    ):
        self.source = source
        self.cache_dir = cache_dir
        self.config = config
        self.executor = executor
        self.record_metric = record_metric
        self.memory: OrderedDict[str, _Resident] = OrderedDict()
        self.memory_used = 0
        self.disk: OrderedDict[str, _OnDisk] = OrderedDict()
        self.disk_used = 0
        self.disk_lock = threading.Lock()
        self.loading: dict[str, _Load] = {}
        self.stats: dict[str, ModelStats] = {}
        self.closed = False
        cache_dir.mkdir(parents=True, exist_ok=True)

    # the request path ------------------------------------------------------------------------------

    async def acquire(self, target: str) -> tuple[LoadedModel, bool]:
        """The loaded model and whether it was a cache hit; call ``release`` when done."""
        resident = self.memory.get(target)
        stats = self.stats.get(target) or self.stats.setdefault(target, ModelStats(target))
        stats.last_used = time.time()
        if resident is not None:
            self.memory.move_to_end(target)
            resident.in_use += 1
            stats.hits += 1
            return resident.model, True
        stats.misses += 1
        load = self.loading.get(target)
        if load is None:
            future = asyncio.get_running_loop().create_future()
            future.add_done_callback(lambda f: f.cancelled() or f.exception())
            load = self.loading[target] = _Load(future)
            stats.state = "loading"
            asyncio.ensure_future(self._load(target, load))
        load.waiters += 1
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
        return model, False

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
            self._drop_from_disk(target)

    # loading -----------------------------------------------------------------------------------------

    async def _load(self, target: str, load: _Load) -> None:
        loop = asyncio.get_running_loop()
        stats = self.stats[target]
        try:
            model, times = await loop.run_in_executor(self.executor, self._fetch_and_load, target)
            if self.closed:
                raise ModelLoadError("the endpoint is being deleted")
            charge = self._charge(model)
            self._make_room(charge, target)
            self.memory[target] = _Resident(model, in_use=load.waiters)  # pinned before they wake
            load.pinned = True
            self.memory_used += charge
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
        except Exception as exc:
            stats.state = "on disk" if target in self.disk else "failed"
            load.future.set_exception(exc)
        finally:
            self.loading.pop(target, None)

    def _folder(self, target: str) -> Path:
        return self.cache_dir / hashlib.sha256(target.encode()).hexdigest()[:32]

    def _fetch_and_load(self, target: str) -> tuple[LoadedModel, LoadTimes]:
        """Runs in a worker thread: the disk cache, the download and the load."""
        times = LoadTimes()
        with self.disk_lock:
            entry = self.disk.get(target)
            if entry is not None:
                self.disk.move_to_end(target)
        if entry is None:
            started = time.perf_counter()
            data = self.source.fetch(target)
            folder = self._folder(target)
            size = self._unpack(target, data, folder)
            times.download_s = time.perf_counter() - started
            entry = _OnDisk(folder, size + len(data))
            with self.disk_lock:
                self.disk[target] = entry
                self.disk_used += entry.size
                self._trim_disk(keep=target)
        else:
            times.from_disk = True
        started = time.perf_counter()
        try:
            model = load_models(entry.folder)
        except ArtifactError as exc:
            raise ModelLoadError(str(exc)) from exc
        times.load_s = time.perf_counter() - started
        return model, times

    def _unpack(self, target: str, data: bytes, folder: Path) -> int:
        """Unpack into the disk cache. A full disk (ENOSPC) first deletes the cached copies of
        other models, least recently used first (AWS: "deleted from disk only when the disk is
        full"), then tries once more."""
        for attempt in (1, 2):
            shutil.rmtree(folder, ignore_errors=True)
            try:
                return extract(data, folder, self.config.max_artifact_bytes)
            except ArtifactError as exc:
                if not _disk_full(exc):
                    raise ModelLoadError(str(exc)) from exc
                with self.disk_lock:
                    freed = self._trim_disk(keep=target, limit=0)
                if attempt == 2 or not freed:
                    raise InsufficientStorage(
                        f"no space left on the instance's disk for model {target}, even after deleting "
                        f"{freed} cached model(s)"
                    ) from exc
        raise AssertionError("unreachable")

    def _trim_disk(self, keep: str, limit: int | None = None) -> int:
        """Delete the least recently used copies on disk until the cache is within ``limit``
        (default: the disk budget; 0 frees everything it may), never ``keep``'s or one being
        loaded (caller holds the lock). Models in memory keep serving. Returns how many."""
        limit = self.config.disk_budget if limit is None else limit
        deleted = 0
        for target in list(self.disk):
            if self.disk_used <= limit:
                break
            if target == keep or target in self.loading:
                continue
            entry = self.disk.pop(target)
            self.disk_used -= entry.size
            shutil.rmtree(entry.folder, ignore_errors=True)
            deleted += 1
            if target in self.stats and target not in self.memory:
                self.stats[target].state = "evicted"
        return deleted

    def _drop_from_disk(self, target: str) -> None:
        with self.disk_lock:
            entry = self.disk.pop(target, None)
            if entry is not None:
                self.disk_used -= entry.size
        if entry is not None:
            shutil.rmtree(entry.folder, ignore_errors=True)
            self.stats[target].state = "evicted"

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
        self.memory_used -= self._charge(resident.model)
        stats = self.stats[target]
        stats.evictions += 1
        stats.state = "on disk" if target in self.disk else "evicted"
        del resident
        self.record_metric("ModelUnloadingTime", (time.perf_counter() - started) * 1e6, "Microseconds")
        return True

    # inspection and shutdown --------------------------------------------------------------------------

    def snapshot(self) -> dict:
        return {
            "memory_budget_bytes": self.config.memory_budget,
            "memory_used_bytes": self.memory_used,
            "worker_bytes": self.config.worker_bytes,
            "disk_budget_bytes": self.config.disk_budget,
            "disk_used_bytes": self.disk_used,
            "loaded_models": list(self.memory),
            "models": [vars(s).copy() for s in self.stats.values()],
        }

    def close(self) -> None:
        self.closed = True
        self.memory.clear()
        self.memory_used = 0
        with self.disk_lock:
            self.disk.clear()
            self.disk_used = 0
        shutil.rmtree(self.cache_dir, ignore_errors=True)


def _disk_full(error: BaseException) -> bool:
    cause = error.__cause__
    return isinstance(cause, OSError) and cause.errno == errno.ENOSPC
