"""What one loaded model costs on AWS beyond the model: the XGBoost container serves each loaded
model from its own Python worker process, with the container's XGBoost (1.7.4) imported. This
starts such a process (from .venv-container) with one seed-size model loaded and reports its memory.

    .venv/bin/python benchmarks/bench_worker_memory.py

The figure is a floor: the real worker also runs the model server's Python frontend code.
``sagemaker_hosting.MODEL_SERVER_WORKER_BYTES`` is this measurement, rounded.
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


def seed_model() -> bytes:
    import xgboost as xgb

    from mme_helpers import data
    from mme_helpers.sagemaker_hosting import portable_model

    train = data.location_split("Chicago_IL", 1000, 7).train.to_numpy()
    params = {"max_depth": 5, "eta": 0.2, "gamma": 4, "min_child_weight": 6, "subsample": 0.7, "nthread": 1}
    booster = xgb.train(params, xgb.DMatrix(train[:, 1:], label=train[:, 0]), 50)
    return portable_model(booster)


def main() -> None:
    from mme_helpers.container_xgboost import container_python

    python = str(container_python(image_version="1.7-1"))  # the figures below are 1.7-1's
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "xgboost-model"
        model.write_bytes(seed_model())
        worker = [int(subprocess.check_output([python, "-c", WORKER, str(model)])) for _ in range(3)]
        bare = int(subprocess.check_output([python, "-c", BARE]))
        size = model.stat().st_size
    print("One model-server worker, as the SageMaker XGBoost container 1.7-1 runs one per loaded model")
    print(f"  Python alone:                              {bare / 1e6:6.1f} MB")
    print(f"  + NumPy, SciPy, XGBoost 1.7.4, one model:   {min(worker) / 1e6:6.1f} MB (min of 3 processes)")
    print(f"  the model file itself:                      {size / 1e6:6.3f} MB")


if __name__ == "__main__":
    sys.exit(main())
