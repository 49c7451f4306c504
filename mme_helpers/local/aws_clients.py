"""boto3 clients with which the service talks to its own S3, CloudWatch and CloudWatch Logs.

Going through the wire protocol (rather than into moto's objects) keeps the service's own writes
exactly what a user's would be, persisted like them. One exception: training jobs read their
channels straight from moto (``s3_mirror.read_prefix``).
"""

from __future__ import annotations

from functools import cached_property

import boto3
from botocore.config import Config


class ServiceClients:
    def __init__(self, url: str, region: str, access_key_id: str, secret_access_key: str):
        self.session = boto3.session.Session(
            aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key, region_name=region
        )
        self.url = url
        self.config = Config(
            retries={"max_attempts": 2, "mode": "standard"}, max_pool_connections=64, connect_timeout=5, read_timeout=120
        )

    def _client(self, name: str):
        return self.session.client(name, endpoint_url=self.url, config=self.config)

    @cached_property
    def s3(self):
        return self._client("s3")

    @cached_property
    def logs(self):
        return self._client("logs")

    @cached_property
    def cloudwatch(self):
        return self._client("cloudwatch")

    @cached_property
    def iam(self):
        return self._client("iam")
