"""Shared fixtures: one local service for the test session, in its own state folder."""

from __future__ import annotations

import io
import os
import tarfile
import time
import uuid

import numpy as np
import pytest

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

from mme_helpers.local import config, lifecycle


@pytest.fixture(scope="session")
def service_home(tmp_path_factory):
    return tmp_path_factory.mktemp("local-service")


@pytest.fixture(scope="session")
def service(service_home):
    """A running local service; the client environment points at it for the whole session."""
    info, _ = lifecycle.start(service_home)
    saved = dict(os.environ)
    for name in config.clear_variables():
        os.environ.pop(name, None)
    os.environ.update(config.client_environment(info, service_home))
    os.environ[config.HOME_VARIABLE] = str(service_home)
    yield info
    os.environ.clear()
    os.environ.update(saved)
    lifecycle.stop(service_home)


@pytest.fixture(scope="session")
def ctx(service):
    from mme_helpers.session import setup

    return setup("local")


@pytest.fixture(scope="session")
def clients(ctx):
    class Clients:
        sagemaker = ctx.client("sagemaker")
        runtime = ctx.client("sagemaker-runtime")
        s3 = ctx.client("s3")
        cloudwatch = ctx.client("cloudwatch")
        logs = ctx.client("logs")

    return Clients


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def train_booster(num_features: int = 6, rounds: int = 10, seed: int = 0, scale: float = 1.0):
    """A small real XGBoost model; its predictions grow with ``scale``."""
    import xgboost as xgb

    rng = np.random.default_rng(seed)
    x = rng.random((300, num_features))
    y = (x @ np.arange(1, num_features + 1)) * scale
    return xgb.train({"max_depth": 3, "nthread": 1, "objective": "reg:squarederror"}, xgb.DMatrix(x, label=y), rounds)


def model_file(booster=None) -> bytes:
    """``xgboost-model`` as a 3.0-5 training job writes it (UBJSON, the base score a number), which the
    1.7-1 and 3.0-5 containers both read as it was trained."""
    from mme_helpers.sagemaker_hosting import model_for_container

    return model_for_container(booster or train_booster(), "3.0-5")[0]


def model_tar(booster=None, files: dict[str, bytes] | None = None) -> bytes:
    """A model.tar.gz with ``xgboost-model`` (or the given files)."""
    from mme_helpers.sagemaker_hosting import pack_model

    if files is None:
        return pack_model(model_file(booster))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def signed_headers(
    info, method: str, url: str, body: bytes = b"", headers=None, service: str = "sagemaker", when=None
) -> dict[str, str]:
    """Headers of a request signed with the service's credentials (``when``: sign at that time)."""
    from unittest import mock

    from mme_helpers.local.signed_http import signed_headers as sign

    def signed():
        return sign(info.access_key_id, info.secret_access_key, info.region, method, url, body, headers, service)

    if when is None:
        return signed()
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):  # a signature made back then
        return signed()
