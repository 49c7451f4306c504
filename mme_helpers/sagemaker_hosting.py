"""SageMaker hosting as this project models it: what the notebooks' helpers and the local service
both need, and the only module that both import.

- instance types: memory, the share the container gives to models, the model-server worker each
  loaded model costs, the default disk (capacity);
- a loaded model's memory as a multiple of its file (the resident factor);
- which of an endpoint's instances serves a model (routing);
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
import tarfile
import zlib
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
# What one loaded model's model-server worker takes (our model of AWS, not AWS's documentation): the
# XGBoost container runs each loaded model in its own Python worker process with the container's
# XGBoost (1.7.4) imported. Measured by benchmarks/bench_worker_memory.py (RSS of such a process with
# one seed model loaded).
MODEL_SERVER_WORKER_BYTES = 68 * 10**6
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


def instance_index(target: str, instances: int) -> int:
    """Which of an endpoint's instances serves ``target``: a stable hash of its name, so that a
    model lives in one instance's cache (an LRU simulation of the endpoint routes the same way)."""
    return zlib.crc32(target.encode()) % instances


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


def portable_model(booster) -> bytes:
    """The model as JSON that XGBoost 1.7 and 3.x both load to the same predictions.

    XGBoost 3 writes the base score as a one-element list (``"[3.66E5]"``), which 1.7 does not parse:
    it would predict from its default of 0.5, every price off by the mean price."""
    model = json.loads(bytes(booster.save_raw("json")))
    params = model["learner"]["learner_model_param"]
    scores = params["base_score"].strip("[]").split(",")
    if len(scores) == 1:  # a multi-target model keeps its list; 1.7 cannot serve it either way
        params["base_score"] = scores[0]
    return json.dumps(model, separators=(",", ":")).encode()


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` -> ``("bucket", "some/key")``."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an S3 URI: {uri!r} (expected s3://bucket/key)")
    return parsed.netloc, parsed.path.lstrip("/")
