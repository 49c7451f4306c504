"""Eviction made visible: how many models fit, what an exact LRU cache would do with a request
sequence, and whether the endpoint did the same.

An MME unloads the least recently used model when a new one needs memory. With models of one size
the memory holds ``capacity`` of them, and an exact LRU simulation of the request sequence says
which request misses and which model each miss pushes out; the endpoint's own counts (local mode)
can then be checked against it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

import pandas as pd

from .sagemaker_hosting import (
    DEFAULT_IMAGE_VERSION,
    GIB,
    MEMORY_GIB,
    MODEL_MEMORY_SHARE,
    RESIDENT_FACTOR,
    InstanceLoad,
    instance_index,
    model_memory_budget,
    model_server_worker_bytes,
)


def capacity_in_models(memory_bytes: float, model_bytes: float) -> int:
    """How many models of ``model_bytes`` a memory of ``memory_bytes`` holds."""
    if model_bytes <= 0:
        raise ValueError(f"a model takes some memory, got {model_bytes} bytes")
    return int(memory_bytes // model_bytes)


def seed_models_per_instance(
    instance_type: str, model_bytes: float, *, image_version: str = DEFAULT_IMAGE_VERSION
) -> pd.DataFrame:
    """How many models fit on one instance, counted by file size and counted as this project models
    AWS (``model_bytes``: the model file, unpacked; each loaded model also takes the model-server worker
    of ``image_version``'s container). MB are decimal (10**6 bytes)."""
    memory = model_memory_budget(instance_type)
    charged = model_bytes * RESIDENT_FACTOR + model_server_worker_bytes(image_version)
    return pd.DataFrame(
        [
            {
                "counted as": "model file only (what a naive estimate says)",
                "MB per model": round(model_bytes / 1e6, 3),
                "models that fit": capacity_in_models(memory, model_bytes),
            },
            {
                "counted as": f"loaded model + its model-server worker (container {image_version})",
                "MB per model": round(charged / 1e6, 3),
                "models that fit": capacity_in_models(memory, charged),
            },
        ]
    ).set_index("counted as")


def simulate_lru(requests: Sequence[str], capacity: int, loaded: Sequence[str] = ()) -> pd.DataFrame:
    """An exact LRU cache of ``capacity`` models fed ``requests`` in order (``loaded``: what is in
    memory before, least recent first). One row per request: hit or miss, where a miss loads from
    (S3 the first time; the disk cache after an eviction, as disk is far larger than memory), and
    what it evicted."""
    if capacity < 1:
        raise ValueError(f"the cache must hold at least one model, got capacity {capacity}")
    cache: OrderedDict[str, None] = OrderedDict((target, None) for target in loaded)
    seen = set(loaded)
    rows = []
    for number, target in enumerate(requests, 1):
        evicted = ""
        if target in cache:
            cache.move_to_end(target)
            outcome = "hit"
        else:
            outcome = "miss"
            source = "disk" if target in seen else "S3"
            seen.add(target)
            if len(cache) >= capacity:
                evicted, _ = cache.popitem(last=False)
            cache[target] = None
        rows.append(
            {
                "request": number,
                "target_model": target,
                "lru says": outcome,
                "load from": source if outcome == "miss" else "",
                "evicts": evicted,
                "loaded after": len(cache),
            }
        )
    return pd.DataFrame(rows).set_index("request")


def run_sequence(predict: Callable[[str], float], requests: Sequence[str], pace_seconds: float = 0.0) -> pd.DataFrame:
    """Invoke each target in order, ``pace_seconds`` apart; one row per request with its latency."""
    rows = []
    first = time.perf_counter()
    for number, target in enumerate(requests, 1):
        started = time.perf_counter()
        price = predict(target)
        finished = time.perf_counter()
        rows.append(
            {
                "request": number,
                "target_model": target,
                "price": round(float(price), 2),
                "latency_ms": round((finished - started) * 1000, 2),
                "at_s": round(started - first, 2),
            }
        )
        if pace_seconds and number < len(requests):
            time.sleep(max(0.0, pace_seconds - (time.perf_counter() - started)))
    return pd.DataFrame(rows).set_index("request")


def per_model_counts(simulated: pd.DataFrame) -> pd.DataFrame:
    """Misses (= loads) and evictions per model, as the simulation predicts them."""
    misses = simulated[simulated["lru says"] == "miss"].groupby("target_model").size()
    evictions = simulated[simulated["evicts"] != ""].groupby("evicts").size()
    frame = pd.DataFrame({"loads": misses, "evictions": evictions}).fillna(0).astype(int)
    frame.index.name = "target_model"
    return frame


def check_against_endpoint(simulated: pd.DataFrame, loaded: pd.DataFrame) -> pd.DataFrame:
    """The simulation's loads and evictions per model beside the endpoint's own counts.

    ``loaded`` is :func:`mme_helpers.endpoint.loaded_models`; it is empty on AWS, which shows no
    per-model state, and then only the simulation's columns are filled.
    """
    expected = per_model_counts(simulated)
    observed = loaded.reindex(expected.index)[["loads", "evictions"]]
    frame = expected.add_prefix("lru: ").join(observed.add_prefix("endpoint: "))
    frame["same"] = (frame["lru: loads"] == frame["endpoint: loads"]) & (
        frame["lru: evictions"] == frame["endpoint: evictions"]
    )
    return frame


def changes_since(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Each model's loads and evictions between two :func:`mme_helpers.endpoint.loaded_models`
    snapshots: what this run did, whatever earlier runs left in the endpoint's counts."""
    columns = ["loads", "evictions"]
    earlier = before[columns].reindex(after.index).fillna(0)
    return (after[columns] - earlier).astype(int)


def check_every_model(
    simulated: pd.DataFrame, before: pd.DataFrame, after: pd.DataFrame, demo: Sequence[str]
) -> pd.DataFrame:
    """The simulation's loads and evictions beside the endpoint's changes since ``before``, for every
    model the simulation or the endpoint knows: the ``demo``'s own models, and every model that was
    there before (evicted by the demo or not, as the simulation says). Where the endpoint shows no
    per-model state (AWS), its columns are empty and ``same`` is False. ``attrs["summary"]`` says
    what the check found in words that do not depend on what earlier runs left behind."""
    expected = per_model_counts(simulated)
    changed = changes_since(before, after)
    models = expected.index.union(changed.index)
    frame = expected.reindex(models).fillna(0).astype(int).add_prefix("lru: ")
    frame = frame.join(changed.reindex(models).add_prefix("endpoint: "))
    frame["same"] = (frame["lru: loads"] == frame["endpoint: loads"]) & (
        frame["lru: evictions"] == frame["endpoint: evictions"]
    )
    frame.index.name = "target_model"
    own = frame.index.isin(list(demo))
    if after.empty:
        frame.attrs["summary"] = (
            f"per-model state: not available (AWS shows none); the simulation's columns for the {own.sum()} "
            "models of the demo are filled, the endpoint's are empty"
        )
    else:
        others = "yes" if frame.loc[~own, "same"].all() else "NO"
        frame.attrs["summary"] = (
            f"the endpoint agrees with the LRU simulation for {frame.loc[own, 'same'].sum()} of {own.sum()} models "
            f"of the demo; for every model it held before the demo: {others}"
        )
    return frame


def memory_holds(loaded: pd.DataFrame, demo: Sequence[str]) -> str:
    """What the endpoint's memory holds, in one sentence that reads true in both modes: how many of
    the ``demo``'s models and how many others (:func:`mme_helpers.endpoint.loaded_models`; AWS shows
    no per-model state)."""
    if "loaded_models" not in loaded.attrs:
        return "per-model state: not available (AWS shows none)"
    in_memory = loaded.attrs["loaded_models"]
    own = sum(target in set(demo) for target in in_memory)
    used, budget = loaded.attrs["memory_used_bytes"] / 1e6, loaded.attrs["memory_budget_bytes"] / 1e6
    return (
        f"the endpoint's memory holds {len(in_memory)} models: {own} of the demo's, {len(in_memory) - own} others "
        f"({used:.2f} MB of its {budget:.2f} MB budget)"
    )


def model_memory(
    loaded_attrs: dict, instance_type: str, model_bytes: float, *, image_version: str = DEFAULT_IMAGE_VERSION
) -> dict:
    """The memory the endpoint fills with models and how many models of ``model_bytes`` it holds.

    ``model_bytes`` is the model file; loaded, it takes ``RESIDENT_FACTOR`` times that. Local mode
    reports its budget (``loaded_models(...).attrs``); AWS does not, and there (in this project's model
    of AWS) each loaded model also costs the model-server worker of ``image_version``'s container, so
    the instance's memory for models is divided by both. MB and GB are decimal (10**6, 10**9 bytes).
    """
    loaded = int(model_bytes * RESIDENT_FACTOR)
    budget = loaded_attrs.get("memory_budget_bytes")
    if budget:  # the local endpoint charges its worker too, unless an explicit budget left it at 0
        charged = loaded + loaded_attrs.get("worker_bytes", 0)
        return {
            "memory for models": f"{budget / 1e6:,.1f} MB (the local endpoint's budget)",
            "MB per loaded model": round(charged / 1e6, 3),
            "capacity (models)": capacity_in_models(budget, charged),
        }
    memory = model_memory_budget(instance_type)
    charged = loaded + model_server_worker_bytes(image_version)
    gib = MEMORY_GIB[instance_type]
    share = f"{MODEL_MEMORY_SHARE * 100:.0f} % of {gib} GiB = {gib * GIB / 1e9:,.2f} GB"
    return {
        "memory for models": f"{memory / 1e9:,.2f} GB ({instance_type}: {share})",
        "MB per loaded model": round(charged / 1e6, 3),
        "capacity (models)": capacity_in_models(memory, charged),
    }


def capacity_by_instance_type(
    instance_types: Sequence[str], model_sizes: Sequence[int], *, image_version: str = DEFAULT_IMAGE_VERSION
) -> pd.DataFrame:
    """How many models of these sizes (model files) each instance type holds, in this project's model of
    AWS: 80 % of the instance's memory over the loaded model plus the model-server worker of
    ``image_version``'s container, counted for the largest model. Memory in decimal GB (AWS lists it in
    GiB: 8 GiB = 8.59 GB), per model in decimal MB, so that the columns divide as shown.
    ``attrs["same for every size"]`` says whether the smallest model gives the same count, so that an LRU
    simulation counted in models is exact for this fleet."""
    rows, same = [], True
    worker = model_server_worker_bytes(image_version)
    for instance_type in instance_types:
        memory = model_memory_budget(instance_type)
        per_model = [size * RESIDENT_FACTOR + worker for size in (max(model_sizes), min(model_sizes))]
        largest, smallest = (capacity_in_models(memory, charge) for charge in per_model)
        same = same and largest == smallest
        rows.append(
            {
                "instance type": instance_type,
                "memory (GB)": round(MEMORY_GIB[instance_type] * GIB / 1e9, 2),
                f"for models, {MODEL_MEMORY_SHARE * 100:.0f} % (GB)": round(memory / 1e9, 2),
                "MB per loaded model": round(per_model[0] / 1e6, 1),
                "capacity (models)": largest,
            }
        )
    frame = pd.DataFrame(rows).set_index("instance type")
    frame.attrs["same for every size"] = same
    frame.attrs["worker MB"] = worker / 1e6
    return frame


def hit_ratio(simulated: pd.DataFrame) -> float:
    return float((simulated["lru says"] == "hit").mean())


def simulate_instances(requests: Sequence[str], capacity: int, instances: int) -> pd.DataFrame:
    """An endpoint of several instances, one exact LRU cache of ``capacity`` per instance, each request
    routed as the endpoint routes it (``sagemaker_hosting.instance_index``: to an instance that has the
    model loaded, else to the one with the fewest models). The requests are replayed one at a time, so
    none is in flight when the next is routed and no instance is ever busy: a hot model stays on one
    instance. Rows in request order, as :func:`simulate_lru`'s, with the ``instance`` that served each;
    "load from" is that instance's (each instance has its own disk)."""
    if capacity < 1:
        raise ValueError(f"the cache must hold at least one model, got capacity {capacity}")
    caches: list[OrderedDict[str, None]] = [OrderedDict() for _ in range(instances)]
    seen: list[set[str]] = [set() for _ in range(instances)]
    rows = []
    for number, target in enumerate(requests, 1):
        state = [InstanceLoad(holds=target in cache, in_flight=0, models=len(cache)) for cache in caches]
        serving = instance_index(target, state, busy=1)
        cache, evicted, source = caches[serving], "", ""
        if target in cache:
            cache.move_to_end(target)
            outcome = "hit"
        else:
            outcome = "miss"
            source = "disk" if target in seen[serving] else "S3"
            seen[serving].add(target)
            if len(cache) >= capacity:
                evicted, _ = cache.popitem(last=False)
            cache[target] = None
        rows.append(
            {
                "request": number,
                "target_model": target,
                "lru says": outcome,
                "load from": source,
                "evicts": evicted,
                "loaded after": len(cache),
                "instance": serving,
            }
        )
    return pd.DataFrame(rows).set_index("request")
