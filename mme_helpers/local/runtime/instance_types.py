"""Memory of common SageMaker hosting instance types, from which an endpoint's budget is taken."""

from __future__ import annotations

GIB = 1 << 30

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
# What one loaded model's model-server worker takes on AWS: the XGBoost container runs each loaded
# model in its own Python worker process with the container's XGBoost (1.7.4) imported. Measured by
# benchmarks/bench_worker_memory.py (RSS of such a process with one seed model loaded).
MODEL_SERVER_WORKER_BYTES = 68 * 10**6
# What the container may use for models: the rest goes to the OS, the model server and requests.
MODEL_MEMORY_SHARE = 0.8
DEFAULT_DISK_BYTES = 30 * GIB  # the default ML storage volume of a hosting instance


class UnknownInstanceType(ValueError):
    pass


def model_memory_budget(instance_type: str) -> int:
    try:
        gib = MEMORY_GIB[instance_type]
    except KeyError:
        raise UnknownInstanceType(
            f"instance type {instance_type!r} is not in local mode's table of ml.* types; use one of "
            f"{', '.join(sorted(MEMORY_GIB)[:6])}, ... or set MME_LOCAL_MEMORY_BUDGET_MB in the model's Environment"
        ) from None
    return int(gib * GIB * MODEL_MEMORY_SHARE)
