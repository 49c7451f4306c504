"""Every name of a run, derived from ``RUN_NAME``: later notebooks (and the clean-up) find what
earlier ones made without sharing kernel variables."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_RUN_NAME = re.compile(r"^[a-z0-9](-?[a-z0-9]){0,19}$")
_JOB_TIMESTAMP = r"-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-\d{3}$"


class RunNameError(ValueError):
    pass


def slug(text: str) -> str:
    """A location as SageMaker names allow it: letters, digits and single hyphens."""
    return re.sub(r"-+", "-", re.sub(r"[^A-Za-z0-9]", "-", text)).strip("-")


@dataclass(frozen=True)
class RunNames:
    run: str

    def __post_init__(self):
        if not isinstance(self.run, str) or not _RUN_NAME.match(self.run):
            raise RunNameError(
                f"RUN_NAME {self.run!r} must be 1-20 lower-case letters, digits or single hyphens (e.g. 'demo')"
            )

    # S3 layout ----------------------------------------------------------------------------------
    @property
    def s3_prefix(self) -> str:
        return f"mme-xgboost/{self.run}"

    def data_prefix(self, location: str) -> str:
        return f"{self.s3_prefix}/model_prep/{location}"

    def artifacts_prefix(self, location: str) -> str:
        return f"{self.s3_prefix}/model_artifacts/{location}"

    @property
    def mme_prefix(self) -> str:
        return f"{self.s3_prefix}/multi_model_artifacts/"

    def s3_uri(self, bucket: str, key: str) -> str:
        return f"s3://{bucket}/{key}"

    # SageMaker resources --------------------------------------------------------------------------
    def job_base(self, location: str, version: str = "") -> str:
        """``base_job_name`` for a location; the SDK appends a timestamp (max 63 characters in all)."""
        base = f"{self.run}-{slug(location)}{('-' + version) if version else ''}"
        return base[:39].rstrip("-")

    def job_pattern(self, location: str, version: str = "") -> re.Pattern:
        return re.compile("^" + re.escape(self.job_base(location, version)) + _JOB_TIMESTAMP)

    @property
    def model(self) -> str:
        return f"{self.run}-mme-xgboost"

    @property
    def endpoint(self) -> str:
        return f"{self.run}-mme-xgboost"

    @property
    def endpoint_config(self) -> str:
        return self.endpoint  # MultiDataModel.deploy names the config after the endpoint

    # the fleet of 08_thousand_models: its own endpoint, one config per size tried -------------
    @property
    def fleet_prefix(self) -> str:
        return f"{self.s3_prefix}/fleet_models/"

    @property
    def fleet_model(self) -> str:
        return f"{self.run}-fleet"

    @property
    def fleet_endpoint(self) -> str:
        return f"{self.run}-fleet"

    def fleet_config(self, instance_type: str, instance_count: int = 1) -> str:
        return f"{self.fleet_endpoint}-{slug(instance_type.removeprefix('ml.'))}-x{instance_count}"

    # the SDK v3 notebook (10_sdk_v3): its own endpoint and prefix, so that 03's endpoint is untouched ---
    @property
    def v3_prefix(self) -> str:
        return f"{self.s3_prefix}/sdk_v3_models/"

    @property
    def v3_model(self) -> str:
        return f"{self.run}-sdk-v3"

    @property
    def v3_endpoint(self) -> str:
        return f"{self.run}-sdk-v3"

    @property
    def v3_endpoint_config(self) -> str:
        return f"{self.run}-sdk-v3"

    def v3_job_base(self, location: str) -> str:
        """``base_job_name`` for v3's ``ModelTrainer``, which appends ``-YYYYMMDDHHMMSS`` (not v2's timestamp)."""
        return self.job_base(location, "v3")

    def v3_job_pattern(self, location: str) -> re.Pattern:
        return re.compile("^" + re.escape(self.v3_job_base(location)) + r"-\d{14}$")

    # local files ------------------------------------------------------------------------------------
    def data_dir(self, root: Path | str = "data") -> Path:
        return Path(root) / self.run


def project_path(relative: str | Path) -> Path:
    """A path relative to the project root, wherever the notebook's kernel was started."""
    path = Path(relative)
    if path.is_absolute():
        return path
    return Path(__file__).resolve().parents[1] / path
