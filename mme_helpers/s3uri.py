"""S3 URIs, shared by the notebooks' helpers and the local service."""

from __future__ import annotations

from urllib.parse import urlparse


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` -> ``("bucket", "some/key")``."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an S3 URI: {uri!r} (expected s3://bucket/key)")
    return parsed.netloc, parsed.path.lstrip("/")
