"""Artifacts are served on AWS by the container's XGBoost (1.7.4 for 1.7-1, 3.0.5 for 3.0-5): they
must predict there what they predict here. Runs those XGBoost versions from .venv-container and
.venv-container-3.0 (made by `make venv`); tests/test_container_versions.py compares local endpoints
and training jobs with them."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import train_booster

from mme_helpers import container_xgboost
from mme_helpers.local.sagemaker import xgboost_algorithm
from mme_helpers.sagemaker_hosting import pack_model, portable_model

ROWS = np.random.default_rng(1).random((20, 6))


@pytest.mark.parametrize("version, xgboost", [("1.7-1", "1.7.4"), ("3.0-5", "3.0.5")])
def test_xgboost_3_2_format_predicts_wrong_in_the_container_and_the_portable_one_right(version, xgboost):
    booster = train_booster(scale=100_000.0)  # prices: a base score far from the default of 0.5
    artifacts = {
        "as saved": pack_model(bytes(booster.save_raw("ubj"))),
        "portable": pack_model(portable_model(booster)),
    }
    table = container_xgboost.check_artifacts(artifacts, ROWS, image_version=version)
    assert table.attrs["container_xgboost"] == xgboost
    assert table["loads"].all()  # it loads both without complaint ...
    mean_label = float(np.mean(ROWS @ np.arange(1, 7)) * 100_000)
    assert table.loc["as saved", "largest difference"] > 0.1 * mean_label  # ... and misprices one
    assert table.loc["portable", "largest difference"] < 1e-6 * mean_label


@pytest.mark.parametrize("version", ["1.7-1", "3.0-5"])
def test_local_training_jobs_write_artifacts_the_container_predicts_with(version):
    rng = np.random.default_rng(3)
    x = rng.random((200, 4))
    y = 500_000 + 100_000 * x[:, 0]
    csv = "\n".join(",".join(f"{v:.6f}" for v in (label, *row)) for label, row in zip(y, x, strict=True)).encode()
    hyperparameters = {"num_round": "20", "objective": "reg:squarederror"}
    result = xgboost_algorithm.train({"train": [("train.csv", csv)]}, {"train": "text/csv"}, hyperparameters, version)
    table = container_xgboost.check_artifacts({"job": result.artifact}, x, image_version=version)
    assert table.loc["job", "loads"]
    assert table.loc["job", "largest difference"] < 1.0  # dollars, on prices of 500,000


def test_a_missing_container_environment_is_named_with_the_command_that_makes_it(tmp_path):
    with pytest.raises(container_xgboost.ContainerEnvironmentMissing, match="make venv"):
        container_xgboost.container_python(tmp_path)
