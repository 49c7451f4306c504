"""Model artifacts: unpack a ``model.tar.gz`` safely and load its XGBoost models.

An artifact comes from S3, which a user (or an attacker) controls: the archive is checked before
anything is written (no links, devices, absolute paths or ``..``; bounded size and member count),
and pickles are refused rather than executed.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...sagemaker_hosting import MODEL_FILE, RESIDENT_FACTOR, as_container_reads

MAX_MEMBERS = 1000
PICKLE_PROTOCOL_MARKER = 0x80
DEPRECATED_BINARY_MARKER = b"binf"  # how XGBoost 1.x's save_model to a file without extension begins


class ArtifactError(Exception):
    """The artifact cannot be unpacked or loaded; the message says why."""


@dataclass
class LoadedModel:
    """The boosters of one artifact (several files make an ensemble) and what they cost."""

    boosters: list
    num_features: int
    size_bytes: int  # of the model files
    files: list[str]

    @property
    def memory_bytes(self) -> int:
        """What the loaded model takes in memory (the cache budget counts this)."""
        return int(self.size_bytes * RESIDENT_FACTOR)

    def predict(self, features: np.ndarray) -> np.ndarray:
        if len(self.boosters) == 1:
            return self.boosters[0].inplace_predict(features, validate_features=False)
        stacked = [b.inplace_predict(features, validate_features=False) for b in self.boosters]
        return np.mean(stacked, axis=0).astype(np.float32)


def extract(archive_bytes: bytes, destination: Path, max_bytes: int) -> int:
    """Unpack a (gzipped) tar into ``destination``; returns the bytes written."""
    try:
        archive = tarfile.open(fileobj=io.BytesIO(archive_bytes), mode="r:*")  # noqa: SIM115 (closed below)
    except (tarfile.TarError, gzip.BadGzipFile, EOFError, OSError) as exc:
        raise ArtifactError(f"the model artifact is not a tar.gz archive ({exc})") from exc
    with archive:
        total = 0
        members = []
        try:
            for count, member in enumerate(archive, start=1):
                if count > MAX_MEMBERS:
                    raise ArtifactError(f"the model archive has more than {MAX_MEMBERS} entries")
                name = member.name
                parts = Path(name).parts
                if name.startswith(("/", "\\")) or ".." in parts or not parts:
                    raise ArtifactError(f"the model archive has an unsafe path: {name!r}")
                if not (member.isfile() or member.isdir()):
                    raise ArtifactError(f"the model archive has a link or special file: {name!r}")
                total += member.size
                if total > max_bytes:
                    raise ArtifactError(f"the model archive unpacks to more than {max_bytes:,} bytes (the endpoint's limit)")
                members.append(member)
        except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile) as exc:
            raise ArtifactError(f"the model archive is damaged ({exc})") from exc
        destination.mkdir(parents=True, exist_ok=True)
        try:
            archive.extractall(destination, members=members, filter="data")
        except (tarfile.TarError, EOFError, OSError) as exc:
            shutil.rmtree(destination, ignore_errors=True)
            raise ArtifactError(f"the model archive could not be unpacked ({exc})") from exc
    return total


def load_models(folder: Path, image_version: str = "") -> LoadedModel:
    """Load every regular top-level file (dot-files skipped), as the XGBoost container does, each
    read as the XGBoost of ``image_version``'s container reads it (``as_container_reads``)."""
    import xgboost as xgb

    files = sorted(entry for entry in os.listdir(folder) if not entry.startswith(".") and (folder / entry).is_file())
    if not files:
        raise ArtifactError(f"the model archive holds no model file (expected a top-level '{MODEL_FILE}')")
    boosters, size = [], 0
    for name in files:
        data = (folder / name).read_bytes()
        size += len(data)
        if data[:1] == bytes([PICKLE_PROTOCOL_MARKER]):
            raise ArtifactError(
                f"'{name}' is a Python pickle; local mode does not unpickle model files (it would run "
                "arbitrary code). Save the model with Booster.save_model instead."
            )
        if data[:4] == DEPRECATED_BINARY_MARKER:
            raise ArtifactError(
                f"'{name}' is in XGBoost's deprecated binary format (what XGBoost 1.x writes, e.g. a training job "
                "of the 1.3-1 to 1.7-1 containers on AWS); local mode's XGBoost 3 cannot read it. Save it as JSON "
                "with XGBoost 1.7 (booster.save_model('xgboost-model.json')) and pack that as xgboost-model."
            )
        booster = xgb.Booster(params={"nthread": 1})
        try:
            booster.load_model(bytearray(as_container_reads(data, image_version)))
        except xgb.core.XGBoostError as exc:
            raise ArtifactError(f"'{name}' is not an XGBoost model XGBoost can load: {_first_line(exc)}") from exc
        booster.set_param({"nthread": 1})
        boosters.append(booster)
    features = {b.num_features() for b in boosters}
    if len(features) != 1:
        raise ArtifactError(f"the ensemble's models expect different numbers of features: {sorted(features)}")
    return LoadedModel(boosters=boosters, num_features=features.pop(), size_bytes=size, files=files)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
