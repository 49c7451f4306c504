"""The model registry on its own: LRU order, models in use, one load per model, slow loads."""

import asyncio
import concurrent.futures
import threading
import time

import pytest
from conftest import model_tar, train_booster

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


class Source:
    """Artifacts by name, counting fetches; ``delay`` makes downloads slow."""

    def __init__(self, artifacts=None, delay=0.0):
        self.artifacts = artifacts or {}
        self.delay = delay
        self.fetches: dict[str, int] = {}
        self.lock = threading.Lock()

    def fetch(self, target):
        with self.lock:
            self.fetches[target] = self.fetches.get(target, 0) + 1
        time.sleep(self.delay)
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
    assert reg.stats["b"].evictions == 1 and reg.stats["b"].state == "on disk"


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
    source = Source({"a": ARTIFACT}, delay=0.2)
    reg = registry(tmp_path, source)

    async def scenario():
        results = await asyncio.gather(*(reg.acquire("a") for _ in range(20)))
        return {id(model) for model, _ in results}, [hit for _, hit in results]

    models, hits = run(scenario())
    assert len(models) == 1 and source.fetches == {"a": 1} and not any(hits)
    assert reg.stats["a"].loads == 1 and reg.stats["a"].misses == 20


def test_a_slow_load_answers_not_ready_and_goes_on(tmp_path):
    source = Source({"a": ARTIFACT}, delay=0.5)
    reg = registry(tmp_path, source, load_wait_limit=0.1)

    async def scenario():
        with pytest.raises(ModelNotReady):
            await reg.acquire("a")
        await asyncio.sleep(0.8)
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


def test_disk_budget_deletes_the_oldest_unpacked_models(tmp_path):
    reg = registry(tmp_path, Source({k: ARTIFACT for k in "abc"}), models=10, disk=int(2.5 * (MODEL_SIZE + len(ARTIFACT))))

    async def scenario():
        for key in "abc":
            await reg.acquire(key)
            reg.release(key)

    run(scenario())
    assert list(reg.disk) == ["b", "c"]
    assert reg.disk_used <= reg.config.disk_budget
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_cache_disabled_unloads_after_each_use(tmp_path):
    source = Source({"a": ARTIFACT})
    reg = registry(tmp_path, source, cache_enabled=False)

    async def scenario():
        for _ in range(2):
            await reg.acquire("a")
            reg.release("a")

    run(scenario())
    assert source.fetches == {"a": 2} and not reg.memory and not reg.disk


class GatedSource(Source):
    """Downloads that finish only when the test opens their gate."""

    def __init__(self, artifacts):
        super().__init__(artifacts)
        self.gates = {key: threading.Event() for key in artifacts}

    def fetch(self, target):
        self.gates[target].wait(10)
        return super().fetch(target)


def test_a_second_load_finishing_first_cannot_evict_a_model_its_waiters_are_about_to_use(tmp_path):
    """Two cold loads end in the same instant with memory for one model: the first one's waiter is
    pinned before it wakes, so the second load cannot evict the model it is about to use."""
    source = GatedSource({"a": ARTIFACT, "b": ARTIFACT})
    reg = registry(tmp_path, source, models=1.5)

    async def use(key):
        model, _ = await reg.acquire(key)
        resident = reg.memory.get(key)
        in_memory = resident is not None and resident.model is model and resident.in_use >= 1
        await asyncio.sleep(0.01)  # predicting
        reg.release(key)
        return in_memory

    async def scenario():
        waiting = [asyncio.ensure_future(use(key)) for key in "ab"]
        await asyncio.sleep(0.05)  # both loads are in flight
        for gate in source.gates.values():
            gate.set()
        time.sleep(0.2)  # block the loop: both downloads finish before it resumes
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
    source = Source({"a": ARTIFACT}, delay=0.3)
    reg = registry(tmp_path, source, load_wait_limit=0.05)

    async def scenario():
        with pytest.raises(ModelNotReady):
            await reg.acquire("a")
        await asyncio.sleep(0.5)
        return reg.memory["a"].in_use

    assert run(scenario()) == 0  # loaded in the background, nobody holds it: evictable


def _disk_fills_up(monkeypatch, failures: int):
    """``extract`` hits ENOSPC ``failures`` times, then works again."""
    import errno

    from mme_helpers.local.runtime import registry as registry_module
    from mme_helpers.local.runtime.artifacts import ArtifactError

    real = registry_module.extract
    left = {"failures": failures}

    def extract(data, folder, limit):
        if left["failures"]:
            left["failures"] -= 1
            raise ArtifactError("could not be unpacked") from OSError(errno.ENOSPC, "No space left on device")
        return real(data, folder, limit)

    monkeypatch.setattr(registry_module, "extract", extract)


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
    assert list(reg.disk) == ["c"]  # the other copies made room
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

    assert run(scenario()) is True and reg.loading == {} and "b" not in reg.disk


def test_a_slow_or_failing_load_does_not_hold_up_other_models(tmp_path):
    class Mixed(Source):
        def fetch(self, target):
            if target == "slow":
                time.sleep(1.0)
            return super().fetch(target)

    reg = registry(tmp_path, Mixed({"slow": ARTIFACT, "fast": ARTIFACT, "broken": b"junk"}), models=10)

    async def timed(key):
        started = time.perf_counter()
        try:
            await reg.acquire(key)
            outcome = "ok"
        except ModelLoadError:
            outcome = "failed"
        return outcome, time.perf_counter() - started

    async def scenario():
        return await asyncio.gather(timed("slow"), timed("broken"), timed("fast"))

    (slow, slow_s), (broken, broken_s), (fast, fast_s) = run(scenario())
    assert (slow, broken, fast) == ("ok", "failed", "ok")
    assert fast_s < 0.5 and broken_s < 0.5 and slow_s >= 1.0
