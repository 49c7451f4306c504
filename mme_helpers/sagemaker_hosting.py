"""SageMaker hosting as this project models it: what the notebooks' helpers and the local service
both need, and the only module that both import.

- instance types: memory, the share the container gives to models, the model-server worker each
  loaded model costs (per container version), the default disk (capacity);
- a loaded model's memory as a multiple of its file (the resident factor);
- which of an endpoint's instances serves a request for a model (routing, as AWS documents it);
- the artifact format: the XGBoost image names, ``model.tar.gz`` holding ``xgboost-model``, a model
  written so that the container's XGBoost reads it as it was trained, S3 URIs.

The notebook side (eviction, fleet, container_xgboost, ...) and the service (``mme_helpers.local``)
import these from here and nothing else from each other; ``tests/test_layers.py`` holds them to it.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import struct
import tarfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlparse

# instance types ---------------------------------------------------------------------------------

GIB = 1 << 30

# Memory of common SageMaker hosting instance types (AWS's instance pages), from which an endpoint's
# budget is taken.
MEMORY_GIB = {
    "ml.t2.medium": 4,
    "ml.t2.large": 8,
    "ml.t2.xlarge": 16,
    "ml.t2.2xlarge": 32,
    "ml.t3.medium": 4,
    "ml.t3.large": 8,
    "ml.t3.xlarge": 16,
    "ml.t3.2xlarge": 32,
    "ml.m4.xlarge": 16,
    "ml.m4.2xlarge": 32,
    "ml.m4.4xlarge": 64,
    "ml.m4.10xlarge": 160,
    "ml.m4.16xlarge": 256,
    "ml.m5.large": 8,
    "ml.m5.xlarge": 16,
    "ml.m5.2xlarge": 32,
    "ml.m5.4xlarge": 64,
    "ml.m5.12xlarge": 192,
    "ml.m5.24xlarge": 384,
    "ml.m5d.large": 8,
    "ml.m5d.xlarge": 16,
    "ml.m5d.2xlarge": 32,
    "ml.m6i.large": 8,
    "ml.m6i.xlarge": 16,
    "ml.m6i.2xlarge": 32,
    "ml.m6i.4xlarge": 64,
    "ml.m7i.large": 8,
    "ml.m7i.xlarge": 16,
    "ml.m7i.2xlarge": 32,
    "ml.c4.large": 3.75,
    "ml.c4.xlarge": 7.5,
    "ml.c4.2xlarge": 15,
    "ml.c4.4xlarge": 30,
    "ml.c5.large": 4,
    "ml.c5.xlarge": 8,
    "ml.c5.2xlarge": 16,
    "ml.c5.4xlarge": 32,
    "ml.c5.9xlarge": 72,
    "ml.c6i.large": 4,
    "ml.c6i.xlarge": 8,
    "ml.c6i.2xlarge": 16,
    "ml.c6i.4xlarge": 32,
    "ml.c7i.large": 4,
    "ml.c7i.xlarge": 8,
    "ml.c7i.2xlarge": 16,
    "ml.r5.large": 16,
    "ml.r5.xlarge": 32,
    "ml.r5.2xlarge": 64,
    "ml.r5.4xlarge": 128,
    "ml.r6i.large": 16,
    "ml.r6i.xlarge": 32,
    "ml.r6i.2xlarge": 64,
    "ml.g4dn.xlarge": 16,
    "ml.g4dn.2xlarge": 32,
    "ml.g5.xlarge": 16,
    "ml.g5.2xlarge": 32,
}
# What one loaded model's model-server worker takes, per XGBoost container image version (our model of
# AWS, not AWS's documentation): the container runs each loaded model in its own Python worker process
# with its XGBoost imported. Measured by benchmarks/bench_worker_memory.py (RSS of such a process with one
# seed model loaded as that version's training job writes it, min of 3), rounded up to whole MB: 1.7-1
# (XGBoost 1.7.4) 67.2-67.3 MB, 3.0-5 (XGBoost 3.0.5) 70.3-70.4 MB. Decimal MB (10**6 bytes), as printed.
MODEL_SERVER_WORKER_BYTES = {"1.7-1": 68 * 10**6, "3.0-5": 71 * 10**6}
DEFAULT_IMAGE_VERSION = "3.0-5"  # the notebooks' container


def model_server_worker_bytes(image_version: str) -> int:
    """What a loaded model's worker takes in the container of ``image_version``. A version that was not
    measured is charged as the measured one of its XGBoost major release (1.x as 1.7-1, newer as 3.0-5):
    the worker is mostly Python, NumPy, SciPy and XGBoost, which change little within a release line."""
    if image_version in MODEL_SERVER_WORKER_BYTES:
        return MODEL_SERVER_WORKER_BYTES[image_version]
    return MODEL_SERVER_WORKER_BYTES["1.7-1" if image_version.startswith(("0.", "1.", "1-")) else "3.0-5"]


# What the container may use for models (our model): the rest goes to the OS, the model server and requests.
MODEL_MEMORY_SHARE = 0.8
DEFAULT_DISK_BYTES = 30 * GIB  # the default ML storage volume of a hosting instance


class UnknownInstanceType(ValueError):
    pass


def model_memory_budget(instance_type: str) -> int:
    """Bytes an instance of ``instance_type`` gives to loaded models."""
    try:
        gib = MEMORY_GIB[instance_type]
    except KeyError:
        raise UnknownInstanceType(
            f"instance type {instance_type!r} is not in local mode's table of ml.* types; use one of "
            f"{', '.join(sorted(MEMORY_GIB)[:6])}, ... or set MME_LOCAL_MEMORY_BUDGET_MB in the model's Environment"
        ) from None
    return int(gib * GIB * MODEL_MEMORY_SHARE)


# a loaded model ---------------------------------------------------------------------------------

# What a loaded booster costs in memory, as a multiple of its model file: measured 1.32-1.39x (RSS
# per model over 300 loaded copies, XGBoost 3.2, 136 KB and 1.2 MB models). The cache budget is
# spent in these bytes, so that a budget is what the process really uses.
RESIDENT_FACTOR = 1.4


# routing ----------------------------------------------------------------------------------------


# AWS documents the rule ("How multi-model endpoints work"): "SageMaker AI continues to route requests
# for a model to the instance where the model is already loaded. However, if the model receives many
# invocation requests, and there are additional instances for the multi-model endpoint, SageMaker AI
# routes some requests to another instance to accommodate the traffic." It gives no number for "many"
# and no rule for a model loaded nowhere. Ours (our model, not AWS's documentation): an instance is busy
# when it has as many requests in flight as BUSY_REQUESTS_PER_VCPU times its vCPUs, because AWS's
# instance recommendations say to "think of the number of vCPUs as the concurrency limit to perform
# inference on the loaded models"; with every vCPU taken, one more request would queue.
BUSY_REQUESTS_PER_VCPU = 1
_SIZE_VCPUS = {"medium": 2, "large": 2, "xlarge": 4}


def vcpus(instance_type: str) -> int:
    """An instance type's vCPUs, read from its size as AWS names them: ``large`` 2, ``xlarge`` 4,
    ``<n>xlarge`` 4n (``medium`` 2), which every type of MEMORY_GIB follows (AWS's instance pages).
    A size outside that naming counts as one vCPU."""
    size = instance_type.rpartition(".")[2]
    if size in _SIZE_VCPUS:
        return _SIZE_VCPUS[size]
    times = size.removesuffix("xlarge")
    return 4 * int(times) if size.endswith("xlarge") and times.isdigit() else 1


def busy_at(instance_type: str) -> int:
    """Requests in flight at which an instance of ``instance_type`` counts as busy (see above)."""
    return max(1, BUSY_REQUESTS_PER_VCPU * vcpus(instance_type))


@dataclass(frozen=True)
class InstanceLoad:
    """What routing sees of one instance when a request for a model arrives."""

    holds: bool  # the model is loaded there (or being loaded: a second request joins that load)
    in_flight: int  # requests routed there and not yet answered
    models: int  # models loaded there (or being loaded), each of which takes its share of memory


def hash_index(target: str, instances: int) -> int:
    """A stable hash of the model's name over ``instances``: the tie-break between equally loaded
    instances (and local mode's routing before it routed as AWS documents)."""
    return zlib.crc32(target.encode()) % instances


def instance_index(target: str, instances: Sequence[InstanceLoad], busy: int) -> int:
    """Which of an endpoint's instances serves this request for ``target``, as AWS documents it:
    an instance that holds the model (the least busy if several do); another instance when that one
    has ``busy`` requests in flight and another does not (the model is loaded there too: a hot model
    spreads); with no copy, the least loaded instance (fewest requests in flight, then fewest models;
    equal ones are told apart by a hash of the name, so that new models spread evenly).

    The endpoint calls it with its instances' state at each request, an LRU simulation with its
    caches' (where nothing is in flight, so that only the first and last rules apply)."""
    order = sorted(range(len(instances)), key=lambda i: (instances[i].in_flight, instances[i].models, i))
    holders = [i for i in order if instances[i].holds]
    if holders:
        if instances[holders[0]].in_flight < busy:
            return holders[0]
        free = [i for i in order if not instances[i].holds and instances[i].in_flight < busy]
        return _least_loaded(target, instances, free) if free else holders[0]
    return _least_loaded(target, instances, order)


def _least_loaded(target: str, instances: Sequence[InstanceLoad], candidates: list[int]) -> int:
    def load(i: int) -> tuple[int, int]:
        return instances[i].in_flight, instances[i].models

    least = min(load(i) for i in candidates)
    tied = [i for i in candidates if load(i) == least]
    return tied[hash_index(target, len(tied))]


# the artifact format ----------------------------------------------------------------------------

# the built-in XGBoost algorithm's images: .../sagemaker-xgboost:<version>
XGBOOST_IMAGE = re.compile(r"(^|/)sagemaker-xgboost:(?P<version>[\w.-]+)$")
MODEL_FILE = "xgboost-model"  # what the container loads from model.tar.gz


def pack_model(model_bytes: bytes, name: str = MODEL_FILE) -> bytes:
    """``model.tar.gz`` with the single top-level file the container loads.

    Timestamps are zero, so the same data and hyperparameters give a byte-identical artifact.
    """
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped, tarfile.open(fileobj=zipped, mode="w") as archive:
        info = tarfile.TarInfo(name)
        info.size = len(model_bytes)
        info.mode = 0o644
        archive.addfile(info, io.BytesIO(model_bytes))
    return buffer.getvalue()


# image version -> the XGBoost its container runs: aws/sagemaker-xgboost-container, branch or tag of the
# version, docker/<version>/base/Dockerfile.cpu, ``ARG XGBOOST_VERSION`` (1.7-1: branch 1.7-1; 3.0-5: tag
# v3.0-5). The SDK offers 3.2-0 too (SDK v3's image_uri_config), but no Dockerfile of it is published: local
# mode claims nothing about it and serves it with its own XGBoost.
CONTAINER_XGBOOST = {
    "1.0-1": "1.0.0",
    "1.2-1": "1.2.0",
    "1.2-2": "1.2.0",
    "1.3-1": "1.3.3",
    "1.5-1": "1.5.2",
    "1.7-1": "1.7.4",
    "3.0-5": "3.0.5",
}
DEFAULT_BASE_SCORE = "5E-1"  # what XGBoost before 3.1 predicts from when it cannot read a model's base score


def _release(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def reads_listed_base_score(image_version: str) -> bool:
    """Whether the container's XGBoost reads a base score written as a list (``"[3.66E5]"``).

    XGBoost 3.1 began writing it so (one value per target); the XGBoost of the containers up to 3.0-5
    does not parse it and predicts from its default 0.5 instead, without a word: every price off by the
    mean price. Checked in the containers' own XGBoost 1.7.4 and 3.0.5 (tests/test_container_versions.py);
    the older ones predate the list form. A version without a known XGBoost is taken to read it."""
    xgboost = CONTAINER_XGBOOST.get(image_version)
    return xgboost is None or _release(xgboost) >= (3, 1)


_UBJ_LENGTHS = {b"i": ">b", b"U": ">B", b"I": ">h", b"l": ">i", b"L": ">q"}
_UBJ_BASE_SCORE = b"base_scoreS"  # the key, then the string marker of its value


def _ubj_base_score(raw: bytes) -> tuple[int, int, str] | None:
    """Where the base score's text sits in a UBJSON model: ``(start, end, text)``, start at its length marker."""
    at = raw.find(_UBJ_BASE_SCORE)
    if at < 0:
        return None
    start = at + len(_UBJ_BASE_SCORE)
    form = _UBJ_LENGTHS.get(raw[start : start + 1])
    if form is None:
        return None
    width = struct.calcsize(form)
    (length,) = struct.unpack(form, raw[start + 1 : start + 1 + width])
    end = start + 1 + width + length
    return start, end, raw[start + 1 + width : end].decode()


def _with_base_score(model: bytes, replace) -> bytes:
    """``model`` (JSON or UBJSON) with its base score text passed through ``replace``; other bytes (the
    deprecated binary format, damaged files) come back as they are."""
    if model[:2] == b'{"' or (model[:1] == b"{" and model[1:2].isspace()):  # JSON
        try:
            document = json.loads(model)
            params = document["learner"]["learner_model_param"]
        except (ValueError, KeyError, TypeError):
            return model
        changed = replace(params.get("base_score", ""))
        if changed == params.get("base_score", ""):
            return model
        params["base_score"] = changed
        return json.dumps(document, separators=(",", ":")).encode()
    if model[:1] == b"{":  # UBJSON
        found = _ubj_base_score(model)
        if found is None:
            return model
        start, end, text = found
        changed = replace(text)
        if changed == text:
            return model
        encoded = changed.encode()
        return model[:start] + b"L" + struct.pack(">q", len(encoded)) + encoded + model[end:]
    return model


def _scalar(text: str) -> str:
    scores = text.strip("[]").split(",")
    return scores[0] if text.startswith("[") and len(scores) == 1 else text  # several targets keep their list


def portable_model(booster) -> bytes:
    """The model as JSON that XGBoost 1.7 and 3.x both load to the same predictions.

    XGBoost 3.1+ writes the base score as a one-element list (``"[3.66E5]"``), which 1.7 (and 3.0) do
    not parse: they would predict from their default of 0.5, every price off by the mean price."""
    return _with_base_score(bytes(booster.save_raw("json")), _scalar)


def model_for_container(booster, image_version: str) -> tuple[bytes, str]:
    """The ``xgboost-model`` a training job of ``image_version`` writes, as near as XGBoost 3 can,
    and what it is (for the job's log).

    The container saves with ``bst.save_model(os.path.join(model_dir, "xgboost-model"))``
    (src/sagemaker_xgboost_container/algorithm_mode/train.py, at the 1.7-1 branch and the v3.0-5 tag):
    a file name without extension, which XGBoost 1.3-1.7 writes in its deprecated binary format (the
    1.0-1 and 1.2-x containers pickle the Booster: ``pkl.dump(bst, f)`` in the same file at branch 1.2-2) and
    XGBoost 3.0 in UBJSON with the base score a plain number (checked in 1.7.4 and 3.0.5,
    tests/test_container_versions.py). XGBoost 3 cannot write the deprecated binary format: for the
    1.x containers the model is written as JSON that their XGBoost reads to the same predictions."""
    xgboost = CONTAINER_XGBOOST.get(image_version)
    native = bytes(booster.save_raw("ubj"))
    if xgboost is None:
        return native, "UBJSON, as the XGBoost of local mode writes it (no known container XGBoost for this version)"
    if _release(xgboost) < (3, 0):
        theirs = "a pickle of the Booster" if _release(xgboost) < (1, 3) else "XGBoost's deprecated binary format"
        return portable_model(booster), (
            f"JSON with the base score a number, which XGBoost {xgboost} reads to the same predictions (the "
            f"container writes {theirs}, which XGBoost 3 cannot write)"
        )
    if _release(xgboost) < (3, 1):
        return _with_base_score(native, _scalar), f"UBJSON with the base score a number, as XGBoost {xgboost} writes it"
    return native, f"UBJSON, as XGBoost {xgboost} writes it"


def as_container_reads(model: bytes, image_version: str) -> bytes:
    """``model`` as the XGBoost of ``image_version``'s container reads it: a base score written as a
    list is lost, and the default 0.5 is used instead (see :func:`reads_listed_base_score`)."""
    if reads_listed_base_score(image_version):
        return model
    return _with_base_score(model, lambda text: DEFAULT_BASE_SCORE if text.startswith("[") else text)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` -> ``("bucket", "some/key")``."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an S3 URI: {uri!r} (expected s3://bucket/key)")
    return parsed.netloc, parsed.path.lstrip("/")
