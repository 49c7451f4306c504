"""The model registry on its own: LRU order, models in use, one load per model, slow loads, and the
concurrency model (the registry touched only from the loop, the disk cache by the model-load threads).

Loads are driven by gates (a download waits until the test opens its gate), never by sleeps."""

import asyncio
import concurrent.futures
import shutil
import threading
from collections import OrderedDict

import pytest
from conftest import model_tar, train_booster

from mme_helpers.local.runtime.disk_cache import DiskCache
from mme_helpers.local.runtime.registry import (
    InsufficientMemory,
    ModelLoadError,
    ModelNotFound,
    ModelNotReady,
    ModelRegistry,
    RegistryConfig,
)
from mme_helpers.sagemaker_hosting import RESIDENT_FACTOR

ARTIFACT = model_tar(train_booster())
MODEL_SIZE = len(train_booster().save_raw("ubj"))
MODEL_MEMORY = int(MODEL_SIZE * RESIDENT_FACTOR)
GATE_TIMEOUT = 10  # a gate never opened fails the test instead of hanging it


class Source:
    """Artifacts by name, counting fetches; a name in ``gated`` downloads only once its gate opens."""

    def __init__(self, artifacts=None, gated=()):
        self.artifacts = artifacts or {}
        self.fetches: dict[str, int] = {}
        self.lock = threading.Lock()
        self.gates = {key: threading.Event() for key in gated}
        self.entered = {key: threading.Event() for key in gated}

    def fetch(self, target):
        with self.lock:
            self.fetches[target] = self.fetches.get(target, 0) + 1
        if target in self.gates:
            self.entered[target].set()
            assert self.gates[target].wait(GATE_TIMEOUT), f"the gate of {target} was never opened"
        if target not in self.artifacts:
            raise ModelNotFound("bucket", target)
        return self.artifacts[target]


def registry(tmp_path, source, models=2.5, disk=10**9, **config):
    return ModelRegistry(
        source,
        tmp_path / "cache",
        RegistryConfig(memory_budget=int(models * MODEL_MEMORY), disk_budget=disk, **config),
        concurrent.futures.ThreadPoolExecutor(8),
    )


def run(coroutine):
    return asyncio.run(coroutine)


def state(reg, target):
    return next(model["state"] for model in reg.snapshot()["models"] if model["target"] == target)


async def loads_done(reg):
    """Wait for the loads going on in the background (the registry keeps their tasks)."""
    await asyncio.wait_for(asyncio.gather(*reg.tasks, return_exceptions=True), GATE_TIMEOUT)


async def until(predicate):
    """Yield to the loop until ``predicate`` holds (the registry's waiters are registered)."""
    for _ in range(1000):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not met")


def test_evicts_the_least_recently_used(tmp_path):
    reg = registry(tmp_path, Source({k: ARTIFACT for k in "abcd"}))

    async def scenario():
        for key in "abac":
            await reg.acquire(key)
            reg.release(key)
        first = list(reg.memory)
        await reg.acquire("d")
        reg.release("d")
        return first, list(reg.memory)

    assert run(scenario()) == (["a", "c"], ["c", "d"])
    assert reg.stats["b"].evictions == 1 and state(reg, "b") == "on disk"


def test_a_model_in_use_is_not_evicted(tmp_path):
    reg = registry(tmp_path, Source({k: ARTIFACT for k in "abc"}), models=1.5)

    async def scenario():
        await reg.acquire("a")  # held, not released
        with pytest.raises(InsufficientMemory, match="serving a request"):
            await reg.acquire("b")
        reg.release("a")
        await reg.acquire("c")
        return list(reg.memory)

    assert run(scenario()) == ["c"]


def test_concurrent_requests_share_one_load(tmp_path):
    source = Source({"a": ARTIFACT}, gated="a")
    reg = registry(tmp_path, source)

    async def scenario():
        requests = [asyncio.ensure_future(reg.acquire("a")) for _ in range(20)]
        await until(lambda: "a" in reg.loading and reg.loading["a"].waiters == 20)  # all wait on one load
        source.gates["a"].set()
        results = await asyncio.gather(*requests)
        return {id(model) for model, _ in results}, [hit for _, hit in results]

    models, hits = run(scenario())
    assert len(models) == 1 and source.fetches == {"a": 1} and not any(hits)
    assert reg.stats["a"].loads == 1 and reg.stats["a"].misses == 20


def test_a_slow_load_answers_not_ready_and_goes_on(tmp_path):
    source = Source({"a": ARTIFACT}, gated="a")
    reg = registry(tmp_path, source, load_wait_limit=0.01)

    async def scenario():
        with pytest.raises(ModelNotReady):
            await reg.acquire("a")  # the download is held at its gate: the wait limit passes
        source.gates["a"].set()
        await loads_done(reg)
        _, hit = await reg.acquire("a")
        return hit

    assert run(scenario()) is True  # the load finished in the background
    assert source.fetches == {"a": 1}


def test_missing_and_broken_models(tmp_path):
    reg = registry(tmp_path, Source({"broken": b"not a tarball"}))

    async def scenario():
        with pytest.raises(ModelNotFound):
            await reg.acquire("absent")
        with pytest.raises(ModelLoadError, match="not a tar.gz"):
            await reg.acquire("broken")
        return reg.loading

    assert run(scenario()) == {}  # nothing stuck in "loading"
    assert state(reg, "broken") == "failed"


def test_names_that_are_not_in_s3_leave_no_stats_behind(tmp_path):
    """A caller can send any TargetModel: the per-model table holds only models whose artifact exists."""
    reg = registry(tmp_path, Source({"a": ARTIFACT}))

    async def scenario():
        for number in range(200):
            with pytest.raises(ModelNotFound):
                await reg.acquire(f"absent-{number}.tar.gz")
        await reg.acquire("a")
        reg.release("a")

    run(scenario())
    assert list(reg.stats) == ["a"] and [m["target"] for m in reg.snapshot()["models"]] == ["a"]


def test_disk_budget_deletes_the_oldest_unpacked_models(tmp_path):
    reg = registry(tmp_path, Source({k: ARTIFACT for k in "abc"}), models=10, disk=int(2.5 * (MODEL_SIZE + len(ARTIFACT))))

    async def scenario():
        for key in "abc":
            await reg.acquire(key)
            reg.release(key)

    run(scenario())
    on_disk, used = reg.disk.holding()
    assert on_disk == {"b", "c"} and used <= reg.config.disk_budget
    assert len(list((tmp_path / "cache").iterdir())) == 2
    assert [state(reg, key) for key in "abc"] == ["in memory"] * 3  # memory keeps serving


def test_cache_disabled_unloads_and_deletes_after_each_use_off_the_loop(tmp_path, monkeypatch):
    source = Source({"a": ARTIFACT})
    reg = registry(tmp_path, source, cache_enabled=False)
    deleted_from: list[str] = []
    real_rmtree = shutil.rmtree

    def rmtree(path, *args, **kwargs):
        deleted_from.append(threading.current_thread().name)
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", rmtree)

    async def scenario():
        loop_thread = threading.current_thread().name
        for _ in range(2):
            await reg.acquire("a")
            reg.release("a")
        reg.executor.shutdown(wait=True)  # the deletions submitted to the model-load threads are done
        return loop_thread

    loop_thread = run(scenario())
    assert len(deleted_from) >= 2 and loop_thread not in deleted_from  # never on the event loop
    assert source.fetches == {"a": 2} and not reg.memory and list((tmp_path / "cache").iterdir()) == []
    assert reg.disk.holding() == (set(), 0)


class LoopOnly(OrderedDict):
    """A registry structure that records which threads touch it."""

    threads: set

    def _touch(self):
        self.threads.add(threading.current_thread().name)

    def __getitem__(self, key):
        self._touch()
        return super().__getitem__(key)

    def __setitem__(self, key, value):
        self._touch()
        super().__setitem__(key, value)

    def __contains__(self, key):
        self._touch()
        return super().__contains__(key)

    def __iter__(self):
        self._touch()
        return super().__iter__()

    def get(self, key, default=None):
        self._touch()
        return super().get(key, default)

    def pop(self, key, *default):
        self._touch()
        return super().pop(key, *default)


def test_the_registry_is_touched_only_from_the_event_loop(tmp_path, monkeypatch):
    """Cold loads, disk trimming, a full disk and evictions: the model-load threads never read or
    write the registry's memory, loads or stats (README: "How the local service runs")."""
    disk = int(2.5 * (MODEL_SIZE + len(ARTIFACT)))
    reg = registry(tmp_path, Source({k: ARTIFACT for k in "abcde"}), models=2.5, disk=disk)
    threads: set[str] = set()
    for name in ("memory", "loading", "stats"):
        watched = LoopOnly(getattr(reg, name))
        watched.threads = threads
        setattr(reg, name, watched)

    async def scenario():
        for key in "abcab":
            await reg.acquire(key)
            reg.release(key)
        _disk_fills_up(monkeypatch, failures=1)
        await reg.acquire("d")
        reg.release("d")
        await reg.acquire("e")
        reg.release("e")
        return threading.current_thread().name

    loop_thread = run(scenario())
    assert threads == {loop_thread}


def test_loaded_model_counts_are_pushed_from_the_loop(tmp_path):
    """The metrics thread reads what the registry pushed (LoadedModelCount), never the registry."""
    pushed: list[tuple[int, str]] = []
    reg = ModelRegistry(
        Source({k: ARTIFACT for k in "abc"}),
        tmp_path / "cache",
        RegistryConfig(memory_budget=int(2.5 * MODEL_MEMORY), disk_budget=10**9),
        concurrent.futures.ThreadPoolExecutor(2),
        report_loaded=lambda count: pushed.append((count, threading.current_thread().name)),
    )

    async def scenario():
        for key in "abc":
            await reg.acquire(key)
            reg.release(key)
        reg.close()
        return threading.current_thread().name

    loop_thread = run(scenario())
    assert [count for count, _ in pushed] == [1, 2, 1, 2, 0]  # c evicts a (1), then loads (2); close
    assert {thread for _, thread in pushed} == {loop_thread}


class GatedLoads(Source):
    """Downloads that finish only when the test opens their gate, and tell when a load is complete."""

    def __init__(self, artifacts):
        super().__init__(artifacts, gated=artifacts)


def test_a_second_load_finishing_first_cannot_evict_a_model_its_waiters_are_about_to_use(tmp_path):
    """Two cold loads end in the same instant with memory for one model: the first one's waiter is
    pinned before it wakes, so the second load cannot evict the model it is about to use."""
    source = GatedLoads({"a": ARTIFACT, "b": ARTIFACT})
    reg = registry(tmp_path, source, models=1.5)
    loaded = threading.Semaphore(0)
    real = reg._fetch_and_load

    def fetch_and_load(target):
        try:
            return real(target)
        finally:
            loaded.release()

    reg._fetch_and_load = fetch_and_load

    async def use(key):
        model, _ = await reg.acquire(key)
        resident = reg.memory.get(key)
        in_memory = resident is not None and resident.model is model and resident.in_use >= 1
        await asyncio.sleep(0)  # predicting: other callbacks run meanwhile
        reg.release(key)
        return in_memory

    async def scenario():
        waiting = [asyncio.ensure_future(use(key)) for key in "ab"]
        await until(lambda: all(event.is_set() for event in source.entered.values()))  # both loads in flight
        for gate in source.gates.values():
            gate.set()
        for _ in "ab":  # block the loop: both loads finish before it resumes
            assert loaded.acquire(timeout=GATE_TIMEOUT)
        return await asyncio.gather(*waiting, return_exceptions=True)

    results = dict(zip("ab", run(scenario()), strict=True))
    served = [key for key, result in results.items() if result is True]
    refused = [key for key, result in results.items() if isinstance(result, InsufficientMemory)]
    # whichever load finished first is served from memory, pinned while in use; the other finds
    # no evictable memory (before the fix, both were "served" and the first one's model had been
    # evicted under it)
    assert len(served) == 1 and len(refused) == 1, results
    assert "serving a request" in str(results[refused[0]])
    assert list(reg.memory) == served and reg.memory[served[0]].in_use == 0 and reg.loading == {}
    assert reg.memory_used <= reg.config.memory_budget


def test_a_waiter_that_gives_up_does_not_keep_the_model_pinned(tmp_path):
    source = Source({"a": ARTIFACT}, gated="a")
    reg = registry(tmp_path, source, load_wait_limit=0.01)

    async def scenario():
        with pytest.raises(ModelNotReady):
            await reg.acquire("a")
        source.gates["a"].set()
        await loads_done(reg)
        return reg.memory["a"].in_use

    assert run(scenario()) == 0  # loaded in the background, nobody holds it: evictable


def _disk_fills_up(monkeypatch, failures: int):
    """``extract`` hits ENOSPC ``failures`` times, then works again."""
    import errno

    from mme_helpers.local.runtime import disk_cache
    from mme_helpers.local.runtime.artifacts import ArtifactError

    real = disk_cache.extract
    left = {"failures": failures}

    def extract(data, folder, limit):
        if left["failures"]:
            left["failures"] -= 1
            raise ArtifactError("could not be unpacked") from OSError(errno.ENOSPC, "No space left on device")
        return real(data, folder, limit)

    monkeypatch.setattr(disk_cache, "extract", extract)


def test_a_full_disk_deletes_cached_copies_and_retries(tmp_path, monkeypatch):
    reg = registry(tmp_path, Source({k: ARTIFACT for k in "abc"}), models=10)

    async def scenario():
        for key in "ab":
            await reg.acquire(key)
            reg.release(key)
        _disk_fills_up(monkeypatch, failures=1)
        _, hit = await reg.acquire("c")
        return hit

    assert run(scenario()) is False
    assert reg.disk.holding()[0] == {"c"}  # the other copies made room
    assert set(reg.memory) == {"a", "b", "c"}  # models in memory keep serving


def test_a_disk_that_stays_full_is_a_clear_error_and_others_keep_serving(tmp_path, monkeypatch):
    from mme_helpers.local.runtime.registry import InsufficientStorage

    reg = registry(tmp_path, Source({k: ARTIFACT for k in "ab"}), models=10)

    async def scenario():
        await reg.acquire("a")
        reg.release("a")
        _disk_fills_up(monkeypatch, failures=2)
        with pytest.raises(InsufficientStorage, match="no space left on the instance's disk for model b"):
            await reg.acquire("b")
        _, hit = await reg.acquire("a")
        return hit

    assert run(scenario()) is True and reg.loading == {} and "b" not in reg.disk.holding()[0]


def test_a_slow_or_failing_load_does_not_hold_up_other_models(tmp_path):
    source = Source({"slow": ARTIFACT, "fast": ARTIFACT, "broken": b"junk"}, gated=["slow"])
    reg = registry(tmp_path, source, models=10)

    async def outcome(key):
        try:
            await reg.acquire(key)
            return "ok"
        except ModelLoadError:
            return "failed"

    async def scenario():
        slow = asyncio.ensure_future(outcome("slow"))
        others = await asyncio.wait_for(asyncio.gather(outcome("broken"), outcome("fast")), GATE_TIMEOUT)
        slow_done_before = slow.done()  # the slow download is still held at its gate
        source.gates["slow"].set()
        return others, slow_done_before, await slow

    others, slow_done_before, slow = run(scenario())
    assert others == ["failed", "ok"] and slow_done_before is False and slow == "ok"


# the disk cache on its own ----------------------------------------------------------------------------


def test_the_disk_cache_never_deletes_a_copy_a_load_is_reading(tmp_path):
    size = MODEL_SIZE + len(ARTIFACT)
    cache = DiskCache(tmp_path / "disk", budget=int(1.5 * size))
    a = cache.store("a", ARTIFACT)  # checked out: being read
    b = cache.store("b", ARTIFACT)  # over budget, but a is being read: nothing can go
    assert cache.holding()[0] == {"a", "b"} and a.folder.exists() and b.folder.exists()
    cache.checkin(a)
    cache.checkin(b)
    assert cache.trim() == 1 and cache.holding()[0] == {"b"} and not a.folder.exists()
    assert cache.checkout("a") is None and cache.checkout("b") == b


def test_the_disk_cache_after_close_deletes_what_it_is_given(tmp_path):
    from mme_helpers.local.runtime.disk_cache import CacheClosed

    cache = DiskCache(tmp_path / "disk", budget=10**9)
    cache.checkin(cache.store("a", ARTIFACT))
    cache.close()
    assert not (tmp_path / "disk").exists()
    with pytest.raises(CacheClosed):
        cache.store("b", ARTIFACT)  # a load that was in flight when the endpoint was deleted
    assert not any((tmp_path / "disk").glob("*")) and cache.holding() == (set(), 0)
