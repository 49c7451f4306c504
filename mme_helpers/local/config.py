"""Where the local service keeps its state, and the facts a client needs to reach it."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

ACCOUNT_ID = "123456789012"  # moto's default account: S3, IAM and STS agree on it
DEFAULT_REGION = "us-west-2"
HOST = "127.0.0.1"
ROLE_NAME = "MmeLocalSageMakerRole"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/{ROLE_NAME}"
HOME_VARIABLE = "MME_LOCAL_HOME"
INFO_FILE = "service.json"
LOG_FILE = "service.log"
SDK_CONFIG_FILE = "sagemaker-config.yaml"


def project_root() -> Path:
    """The repository this package lives in (an editable install points here)."""
    return Path(__file__).resolve().parents[2]


def default_home() -> Path:
    """The state folder: ``$MME_LOCAL_HOME`` or ``<project>/.mme_local``."""
    configured = os.environ.get(HOME_VARIABLE)
    return Path(configured).expanduser().resolve() if configured else project_root() / ".mme_local"


def default_bucket(region: str = DEFAULT_REGION) -> str:
    return f"sagemaker-{region}-{ACCOUNT_ID}"


@dataclass(frozen=True)
class ServiceInfo:
    """What a running service publishes about itself in ``service.json``."""

    pid: int
    port: int
    region: str
    access_key_id: str
    secret_access_key: str
    started_at: float
    home: str

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def save(self, home: Path) -> None:
        """Published 0600 from the start: it holds the secret key."""
        from .private_files import write_private

        write_private(home / INFO_FILE, json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, home: Path) -> ServiceInfo | None:
        try:
            return cls(**json.loads((home / INFO_FILE).read_text()))
        except (FileNotFoundError, json.JSONDecodeError, TypeError):
            return None


def new_credentials() -> tuple[str, str]:
    """An access key pair that only this service run knows."""
    return "LKIA" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30)


# Where the SDK config schema (v2's sagemaker.config, v3's sagemaker.core.config) takes the role
# SageMaker runs a job or model as: a script that passes no role gets the service's, as on a
# SageMaker notebook instance (v3's ModelTrainer reads TrainingJob.RoleArn before the caller identity).
ROLE_CONFIG_PATHS = (
    ("TrainingJob", "RoleArn"),
    ("Model", "ExecutionRoleArn"),
    ("ProcessingJob", "RoleArn"),
    ("CompilationJob", "RoleArn"),
    ("EdgePackagingJob", "RoleArn"),
    ("AutoMLJob", "RoleArn"),
    ("AutoMLJobV2", "RoleArn"),
    ("FeatureGroup", "RoleArn"),
    ("Pipeline", "RoleArn"),
    ("MonitoringSchedule", "MonitoringScheduleConfig", "MonitoringJobDefinition", "RoleArn"),
)
ROLE_VARIABLE = "MME_LOCAL_ROLE_ARN"  # no SDK reads a role from the environment: this is for scripts


def sdk_config_yaml(region: str) -> str:
    """The SageMaker SDK config: no telemetry, a default bucket without an STS call, and the
    service's role as the default execution role."""
    lines = [
        "SchemaVersion: '1.0'",
        "SageMaker:",
        "  PythonSDK:",
        "    Modules:",
        "      TelemetryOptOut: true",
        "      Session:",
        f"        DefaultS3Bucket: {default_bucket(region)}",
    ]
    for path in ROLE_CONFIG_PATHS:
        lines += [f"{'  ' * (depth + 1)}{key}:" for depth, key in enumerate(path[:-1])]
        lines.append(f"{'  ' * len(path)}{path[-1]}: {ROLE_ARN}")
    return "\n".join(lines) + "\n"


def client_environment(info: ServiceInfo, home: Path) -> dict[str, str]:
    """The variables that point botocore and the SageMaker SDK at the local service."""
    url = info.url
    env = {
        "AWS_ENDPOINT_URL": url,  # the catch-all: no service can reach AWS by accident
        "AWS_ACCESS_KEY_ID": info.access_key_id,
        "AWS_SECRET_ACCESS_KEY": info.secret_access_key,
        "AWS_DEFAULT_REGION": info.region,
        "AWS_REGION": info.region,
        "AWS_EC2_METADATA_DISABLED": "true",
        "SAGEMAKER_USER_CONFIG_OVERRIDE": str(home / SDK_CONFIG_FILE),
        "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
        ROLE_VARIABLE: ROLE_ARN,
    }
    for service in ("S3", "SAGEMAKER", "SAGEMAKER_RUNTIME", "STS", "IAM", "CLOUDWATCH", "CLOUDWATCH_LOGS"):
        env[f"AWS_ENDPOINT_URL_{service}"] = url
    return env


def clear_variables() -> tuple[str, ...]:
    """Variables that would override the environment above (profiles, session tokens)."""
    return ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_DEFAULT_PROFILE")
