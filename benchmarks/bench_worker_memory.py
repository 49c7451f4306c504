"""What one loaded model costs on AWS beyond the model: the XGBoost container serves each loaded
model from its own Python worker process, with the container's XGBoost imported. This starts such a
process with one seed-size model loaded, for each container version local mode has an environment
for (1.7-1: XGBoost 1.7.4 in .venv-container; 3.0-5: XGBoost 3.0.5 in .venv-container-3.0), and
reports its memory.

    .venv/bin/python benchmarks/bench_worker_memory.py

The figure is a floor: the real worker also runs the model server's Python frontend code.
``sagemaker_hosting.MODEL_SERVER_WORKER_BYTES`` holds these measurements, rounded up to whole MB.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

WORKER = """
import sys
import numpy as np, scipy.sparse, xgboost as xgb
booster = xgb.Booster()
booster.load_model(sys.argv[1])
booster.predict(xgb.DMatrix(np.zeros((1, 6), dtype=np.float32)))
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(int(status["VmRSS"].split()[0]) * 1024)
"""
BARE = "print(int(dict(line.split(':', 1) for line in open('/proc/self/status'))['VmRSS'].split()[0]) * 1024)"


def seed_booster():
    import xgboost as xgb

    from mme_helpers import data

    train = data.location_split("Chicago_IL", 1000, 7).train.to_numpy()
    params = {"max_depth": 5, "eta": 0.2, "gamma": 4, "min_child_weight": 6, "subsample": 0.7, "nthread": 1}
    return xgb.train(params, xgb.DMatrix(train[:, 1:], label=train[:, 0]), 50)


def measure(image_version: str, booster, folder: Path) -> dict:
    """RSS of a bare Python and of a worker with one model loaded (written as that version's training
    job writes it), in ``image_version``'s environment."""
    from mme_helpers.container_xgboost import container_python
    from mme_helpers.sagemaker_hosting import CONTAINER_XGBOOST, model_for_container

    python = str(container_python(image_version=image_version))
    model = folder / f"xgboost-model-{image_version}"
    model.write_bytes(model_for_container(booster, image_version)[0])
    worker = [int(subprocess.check_output([python, "-c", WORKER, str(model)])) for _ in range(3)]
    bare = int(subprocess.check_output([python, "-c", BARE]))
    return {"bare": bare, "worker": min(worker), "xgboost": CONTAINER_XGBOOST[image_version], "size": model.stat().st_size}


def main() -> None:
    from mme_helpers.sagemaker_hosting import MODEL_SERVER_WORKER_BYTES

    booster = seed_booster()
    with tempfile.TemporaryDirectory() as tmp:
        figures = {version: measure(version, booster, Path(tmp)) for version in ("1.7-1", "3.0-5")}
    print("One model-server worker, as the SageMaker XGBoost container runs one per loaded model (MB = 10**6 bytes)")
    for version, figure in figures.items():
        charged = MODEL_SERVER_WORKER_BYTES[version] / 1e6
        print(f"  container {version} (XGBoost {figure['xgboost']}), model file {figure['size'] / 1e6:.3f} MB:")
        print(f"    Python alone:                          {figure['bare'] / 1e6:6.1f} MB")
        print(f"    + NumPy, SciPy, XGBoost, one model:    {figure['worker'] / 1e6:6.1f} MB (min of 3 processes)")
        print(f"    charged per loaded model (rounded up): {charged:6.1f} MB  (sagemaker_hosting.MODEL_SERVER_WORKER_BYTES)")


if __name__ == "__main__":
    sys.exit(main())
