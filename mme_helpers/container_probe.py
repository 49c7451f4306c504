"""Run by the container's XGBoost (``.venv-container/bin/python container_probe.py FOLDER``):
load every ``model-*`` file in FOLDER as the SageMaker XGBoost container does and print, as JSON,
each model's predictions for ``rows.npy`` or the error. Standard library, NumPy and XGBoost only."""

import json
import sys
from pathlib import Path

import numpy as np
import xgboost as xgb


def main(folder: Path) -> None:
    rows = np.load(folder / "rows.npy")
    predictions = {}
    for path in sorted(folder.glob("model-*")):
        booster = xgb.Booster()
        try:
            booster.load_model(str(path))
            predictions[path.name] = booster.predict(xgb.DMatrix(rows)).tolist()
        except xgb.core.XGBoostError as exc:
            predictions[path.name] = str(exc).strip().splitlines()[0]
    json.dump({"xgboost": xgb.__version__, "predictions": predictions}, sys.stdout)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
