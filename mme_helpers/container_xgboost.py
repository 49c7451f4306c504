"""Models that the SageMaker XGBoost container's own XGBoost reads as they were trained.

The container behind image version ``1.7-1`` runs XGBoost 1.7.4, the one behind ``3.0-5`` XGBoost
3.0.5; this project trains with XGBoost 3.2. Since 3.1, XGBoost writes a model's base score (its
starting prediction, the mean price) as a one-element list, ``"[3.66E5]"``, which 1.7.4 and 3.0.5 do
not parse: they load the model without a word and predict from the default base score of 0.5, every
price off by the mean price. ``sagemaker_hosting.model_for_container`` writes the base score as the
container reads it, and :func:`check_artifacts` proves it: it loads artifacts with the container's
XGBoost (in its own environment, made by ``make venv``: ``.venv-container`` for 1.7.4,
``.venv-container-3.0`` for 3.0.5) and compares its predictions with this environment's.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .sagemaker_hosting import CONTAINER_XGBOOST, MODEL_FILE

# the container's XGBoost -> the environment that has it, and the lock file it is made from (Makefile)
ENVIRONMENTS = {
    "1.7.4": (".venv-container", "requirements-container.lock"),
    "3.0.5": (".venv-container-3.0", "requirements-container-3.0.lock"),
}
DEFAULT_IMAGE_VERSION = "3.0-5"  # the current container (the notebooks' default)
PROBE = Path(__file__).with_name("container_probe.py")


class ContainerEnvironmentMissing(FileNotFoundError):
    """The environment with the container's XGBoost has not been made."""


def model_file(artifact: bytes) -> bytes:
    """``xgboost-model`` out of a ``model.tar.gz``."""
    with tarfile.open(fileobj=io.BytesIO(artifact), mode="r:gz") as archive:
        member = archive.extractfile(MODEL_FILE)
        if member is None:
            raise ValueError(f"the artifact has no {MODEL_FILE}")
        return member.read()


def container_python(root: Path | None = None, image_version: str = DEFAULT_IMAGE_VERSION) -> Path:
    """The Python of the environment with the XGBoost of ``image_version``'s container."""
    from .naming import project_path

    xgboost = CONTAINER_XGBOOST.get(image_version)
    if xgboost not in ENVIRONMENTS:
        checked = ", ".join(f"{v} (XGBoost {x})" for v, x in CONTAINER_XGBOOST.items() if x in ENVIRONMENTS)
        raise ValueError(f"no environment has the XGBoost of image version {image_version!r}; there is one for {checked}")
    environment, lock = ENVIRONMENTS[xgboost]
    python = (root or project_path(environment)) / "bin" / "python"
    if not python.exists():
        raise ContainerEnvironmentMissing(
            f"{python} does not exist: `make venv` makes the environment with the XGBoost of container "
            f"{image_version} ({xgboost}, from {lock})"
        )
    return python


def predict_in_container(
    models: Mapping[str, bytes], rows: np.ndarray, python: Path | None = None, image_version: str = DEFAULT_IMAGE_VERSION
) -> dict:
    """Each model file's predictions for ``rows`` made by the XGBoost of ``image_version``'s container
    (or the error it raised), and that XGBoost's version."""
    python = python or container_python(image_version=image_version)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        names = {}
        for number, (name, data) in enumerate(models.items()):
            (folder / f"model-{number}").write_bytes(data)
            names[f"model-{number}"] = name
        np.save(folder / "rows.npy", np.asarray(rows, dtype=np.float32))
        done = subprocess.run([str(python), str(PROBE), str(folder)], capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"the container's XGBoost could not be run: {done.stderr.strip()[-500:]}")
        answer = json.loads(done.stdout)
    answer["predictions"] = {names[file]: result for file, result in answer["predictions"].items()}
    return answer


def check_artifacts(
    artifacts: Mapping[str, bytes], rows: np.ndarray, image_version: str = DEFAULT_IMAGE_VERSION, python: Path | None = None
):
    """Load each ``model.tar.gz`` here and in the XGBoost of ``image_version``'s container; one row per
    artifact with the largest difference between their predictions for ``rows``."""
    import pandas as pd
    import xgboost as xgb

    files = {name: model_file(artifact) for name, artifact in artifacts.items()}
    theirs = predict_in_container(files, rows, python, image_version)
    table = []
    for name, data in files.items():
        booster = xgb.Booster(params={"nthread": 1})
        booster.load_model(bytearray(data))
        ours = booster.inplace_predict(np.asarray(rows, dtype=np.float32))
        result = theirs["predictions"][name]
        if isinstance(result, str):
            table.append({"model": name, "loads": False, "largest difference": None, "error": result})
            continue
        difference = float(np.max(np.abs(np.asarray(result) - ours)))
        table.append({"model": name, "loads": True, "largest difference": difference, "error": ""})
    frame = pd.DataFrame(table).set_index("model")
    frame.attrs["image_version"] = image_version
    frame.attrs["container_xgboost"] = theirs["xgboost"]
    frame.attrs["our_xgboost"] = xgb.__version__
    return frame
