"""Run by the container's XGBoost (``.venv-container*/bin/python container_probe.py FOLDER``): load
every ``model-*`` file in FOLDER as the SageMaker XGBoost container does and print, as JSON, each
model's predictions for ``rows.npy`` or the error. Standard library, NumPy and XGBoost only.

What the container does (aws/sagemaker-xgboost-container, src/sagemaker_xgboost_container/
algorithm_mode/serve_utils.py, the same at branch 1.7-1 and tag v3.0-5 but for the predict call):
``get_loaded_booster`` loads each file by its path, which has no extension (``booster.load_model(path)``),
and ``predict`` predicts with ``validate_features=False`` up to the model's ``best_ntree_limit`` if it has
one (XGBoost < 2: ``ntree_limit=``; >= 2: ``iteration_range=(0, best)`` when it is above 0)."""

import inspect
import json
import sys
from pathlib import Path

import numpy as np
import xgboost as xgb


def predict_as_the_container(booster, matrix):
    best = int(getattr(booster, "best_ntree_limit", 0) or 0)
    if "ntree_limit" in inspect.signature(booster.predict).parameters:
        return booster.predict(matrix, ntree_limit=best, validate_features=False)
    if best > 0:
        return booster.predict(matrix, iteration_range=(0, best), validate_features=False)
    return booster.predict(matrix, validate_features=False)


def main(folder: Path) -> None:
    rows = np.load(folder / "rows.npy")
    predictions = {}
    for path in sorted(folder.glob("model-*")):
        booster = xgb.Booster()
        try:
            booster.load_model(str(path))
            booster.set_param("nthread", 1)
            predictions[path.name] = predict_as_the_container(booster, xgb.DMatrix(rows)).tolist()
        except xgb.core.XGBoostError as exc:
            predictions[path.name] = str(exc).strip().splitlines()[0]
    json.dump({"xgboost": xgb.__version__, "predictions": predictions}, sys.stdout)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
