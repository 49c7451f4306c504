"""Requests signed with SigV4 by botocore, for callers that do not go through a boto3 client:
the service's own ``/_local/*`` paths (health, per-model state), benchmarks and tests that send
raw HTTP. The service answers only requests signed with its credentials."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

ADMIN_SIGNING_NAME = "mme-local"


def signed_headers(
    access_key_id: str,
    secret_access_key: str,
    region: str,
    method: str,
    url: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    service: str = "sagemaker",
) -> dict[str, str]:
    """The headers of a request signed as botocore signs it."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    auth = SigV4Auth(Credentials(access_key_id, secret_access_key), service, region)
    auth.add_auth(request)
    return dict(request.headers.items())


def signed_get(url: str, path: str, access_key_id: str, secret_access_key: str, region: str, timeout: float = 10.0):
    """``(status, parsed JSON body)`` of ``GET url + path``, signed with SigV4."""
    headers = signed_headers(
        access_key_id, secret_access_key, region, "GET", url.rstrip("/") + path, service=ADMIN_SIGNING_NAME
    )
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        conn.close()
