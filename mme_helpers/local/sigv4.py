"""The parts of a SigV4 signature that tell which service a request is for."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

_HEADER = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/([^/,\s]+)/aws4_request")
_QUERY = re.compile(r"(?:^|&)X-Amz-Credential=([^&]+)")


@dataclass(frozen=True)
class CredentialScope:
    access_key_id: str
    date: str
    region: str
    service: str


def credential_scope(authorization: str | None, query_string: bytes = b"") -> CredentialScope | None:
    """From the ``Authorization`` header, or from a presigned URL's ``X-Amz-Credential``."""
    if authorization:
        match = _HEADER.search(authorization)
        if match:
            return CredentialScope(*match.groups())
    if query_string and b"X-Amz-Credential" in query_string:
        found = _QUERY.search(query_string.decode("latin-1"))
        if found:
            parts = unquote(found.group(1)).split("/")
            if len(parts) == 5:
                return CredentialScope(parts[0], parts[1], parts[2], parts[3])
    return None
