"""The parts of a SigV4 signature that tell which service a request is for."""

from __future__ import annotations

import base64
import calendar
import hmac
import re
from functools import lru_cache
from hashlib import sha1, sha256
from typing import NamedTuple, Protocol
from urllib.parse import parse_qs, parse_qsl, quote, unquote

from botocore.utils import normalize_url_path

_HEADER = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/([^/,\s]+)/aws4_request")
_QUERY = re.compile(r"(?:^|&)X-Amz-Credential=([^&]+)")


class CredentialScope(NamedTuple):
    """A tuple, so that it hashes in C: it keys the signing-key cache on every request."""

    access_key_id: str
    date: str
    region: str
    service: str


def credential_scope(authorization: str | None, query_string: bytes = b"") -> CredentialScope | None:
    """From the ``Authorization`` header, or from a presigned URL's ``X-Amz-Credential``."""
    if authorization:
        parts = _authorization_parts(authorization)  # a well-formed header: parsed once for routing and check
        scope = _parsed_credential(parts[0]) if parts else None
        if scope is not None and all(scope) and len(scope.date) == 8 and scope.date.isdecimal():
            return scope  # what the search below finds in such a header
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


# Verification -------------------------------------------------------------------------------------
# The canonical request is built the way botocore builds it when it signs (botocore.auth.SigV4Auth
# and S3SigV4Auth), from the request exactly as it arrived on the wire.

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_CLOCK_SKEW_S = 15 * 60  # AWS refuses header-signed requests dated further off than this
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_AUTH_HEADER = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+)\s*,\s*SignedHeaders=(?P<signed>[^,\s]+)\s*,"
    r"\s*Signature=(?P<signature>[0-9a-f]{64})\s*$"
)


class AuthFailure(Exception):
    """Why a request is not accepted: ``missing``, ``malformed``, ``unknown-key``, ``mismatch``,
    ``expired`` or ``region`` (the caller turns the kind into the protocol's error code);
    ``region`` also carries the region expected and whether the credential was in the query."""

    def __init__(self, kind: str, message: str, region: str | None = None, presigned: bool = False):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.region = region
        self.presigned = presigned


# IAM and STS are global: on AWS a client of any region reaches them (botocore signs their global
# endpoint with us-east-1), but pointed at an endpoint URL botocore signs with the client's own
# region. So any region is theirs; every other service answers only for the region it runs in.
GLOBAL_SERVICES = frozenset({"iam", "sts"})


class WireRequest(Protocol):
    """What a signature check reads of a request, as it arrived: method, path and query as sent,
    and each header's values in order (lower-case names). ``asgi.Request`` is one."""

    method: str
    raw_path: bytes
    query_string: bytes
    header_values: dict[str, list[str]]


def _header(request: WireRequest, name: str) -> str | None:
    values = request.header_values.get(name)
    return ",".join(values) if values else None


@lru_cache(maxsize=1024)
def _amz_time(text: str) -> float:
    if len(text) != 16 or text[8] != "T" or text[15] != "Z" or not (text[:8] + text[9:15]).isdigit():
        raise AuthFailure("malformed", f"X-Amz-Date '{text}' is not a date like 20261130T120000Z")
    fields = (int(text[0:4]), int(text[4:6]), int(text[6:8]), int(text[9:11]), int(text[11:13]), int(text[13:15]))
    return calendar.timegm(fields + (0, 0, 0))


@lru_cache(maxsize=256)
def _signer(secret: str, scope: CredentialScope) -> HmacSha256:
    """The HMAC of the signing key, derived once per key and day (as AWS's SDKs cache it too)."""
    key = ("AWS4" + secret).encode()
    for part in (scope.date, scope.region, scope.service, "aws4_request"):
        key = hmac.digest(key, part.encode(), "sha256")
    return HmacSha256(key)


class HmacSha256:
    """HMAC-SHA256 with one key, its padded inner and outer hashes computed once (RFC 2104, as the
    ``hmac`` module does when it has no OpenSSL HMAC): a copy and two updates per message, where
    ``hmac.digest`` sets OpenSSL's HMAC up anew each time (2.5 times slower, on every request)."""

    BLOCK = 64

    def __init__(self, key: bytes):
        if len(key) > self.BLOCK:
            key = sha256(key).digest()
        key = key.ljust(self.BLOCK, b"\0")
        self.inner = sha256(key.translate(_XOR_36))
        self.outer = sha256(key.translate(_XOR_5C))

    def hexdigest(self, message: bytes) -> str:
        inner = self.inner.copy()
        inner.update(message)
        outer = self.outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


_XOR_36 = bytes(x ^ 0x36 for x in range(256))
_XOR_5C = bytes(x ^ 0x5C for x in range(256))


@lru_cache(maxsize=4096)
def _canonical_uri(raw_path: bytes, s3: bool) -> str:
    path = raw_path.decode("latin-1") or "/"
    return path if s3 else quote(normalize_url_path(path), safe="/~")


def _canonical_query(query_string: bytes, drop: str | None = None) -> str:
    if not query_string:
        return ""
    pairs = []
    for pair in query_string.decode("latin-1").split("&"):
        key, _, value = pair.partition("=")
        if key != drop:
            pairs.append((key, value))
    return "&".join(f"{key}={value}" for key, value in sorted(pairs))


def _canonical_headers(request: WireRequest, signed: list[str]) -> str:
    lines = []
    for name in signed:
        values = request.header_values.get(name)
        if not values:
            raise AuthFailure("mismatch", f"the signed header '{name}' is not in the request")
        lines.append(f"{name}:{','.join([' '.join(value.split()) for value in values])}")
    return "\n".join(lines) + "\n"


def _check(secret: str, scope: CredentialScope, amz_date: str, canonical: str, signature: str) -> None:
    string_to_sign = "\n".join(
        [
            ALGORITHM,
            amz_date,
            f"{scope.date}/{scope.region}/{scope.service}/aws4_request",
            sha256(canonical.encode()).hexdigest(),
        ]
    )
    expected = _signer(secret, scope).hexdigest(string_to_sign.encode())
    if not hmac.compare_digest(expected, signature):
        raise AuthFailure(
            "mismatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method.",
        )


def verify(
    request: WireRequest, secrets: dict[str, str], now: float, body_sha256: str | None, region: str | None = None
) -> CredentialScope:
    """Check a request's SigV4 signature (``Authorization`` header or presigned query) against
    the known ``secrets`` (access key id → secret). ``body_sha256`` is the body's hash; ``None``
    takes the hash the request declares in ``x-amz-content-sha256`` (S3 signs it that way, and
    its bodies can be too large to hold). ``region``: the one region the credential may be scoped
    to (global services aside). Returns the credential scope, or raises AuthFailure."""
    authorization = _header(request, "authorization")
    if authorization:
        return _verify_header(request, authorization, secrets, now, body_sha256, region)
    if b"X-Amz-Signature=" in request.query_string:
        return _verify_query(request, secrets, now, region)
    if b"AWSAccessKeyId=" in request.query_string and b"Signature=" in request.query_string:
        return _verify_s3_v2_query(request, secrets, now)
    raise AuthFailure("missing", "the request is not signed: no Authorization header and no X-Amz-Signature")


@lru_cache(maxsize=256)
def _parsed_credential(credential: str) -> CredentialScope | None:
    """``<key>/<date>/<region>/<service>/aws4_request``: the same few on every request of a day."""
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        return None
    return CredentialScope(*parts[:4])


def _scope_of(
    credential: str, secrets: dict[str, str], region: str | None, request: WireRequest, presigned: bool = False
) -> tuple[CredentialScope, str]:
    scope = _parsed_credential(credential)
    if scope is None:
        raise AuthFailure("malformed", f"the credential '{credential}' is not <key>/<date>/<region>/<service>/aws4_request")
    secret = secrets.get(scope.access_key_id)
    if secret is None:
        raise AuthFailure("unknown-key", f"The access key id {scope.access_key_id} is not one this service issued.")
    if region is not None and scope.region != region and not _any_region(scope, request):
        if scope.service != "s3":
            message = f"Credential should be scoped to a valid region, not '{scope.region}'."
        elif presigned:
            wrong = f"the region '{scope.region}' is wrong; expecting '{region}'"
            message = f"Error parsing the X-Amz-Credential parameter; {wrong}"
        else:
            message = f"The authorization header is malformed; the region '{scope.region}' is wrong; expecting '{region}'"
        raise AuthFailure("region", message, region=region, presigned=presigned)
    return scope, secret


def _any_region(scope: CredentialScope, request: WireRequest) -> bool:
    """IAM and STS are global; S3's ListBuckets (``GET /``) is answered for us-east-1 too."""
    if scope.service in GLOBAL_SERVICES:
        return True
    return scope.service == "s3" and scope.region == "us-east-1" and request.raw_path in (b"", b"/")


def precheck(request: WireRequest, secrets: dict[str, str], now: float, region: str | None = None) -> None:
    """Everything ``verify`` checks of a header signature that does not need the body's hash (its
    form, key, region and date), so that a request that cannot pass is refused before its body
    (up to gigabytes) is read and hashed."""
    authorization = _header(request, "authorization")
    if not authorization:
        if b"X-Amz-Signature=" not in request.query_string and b"Signature=" not in request.query_string:
            raise AuthFailure("missing", "the request is not signed: no Authorization header and no X-Amz-Signature")
        return
    _header_parts(request, authorization, secrets, now, region)


@lru_cache(maxsize=64)
def _authorization_parts(authorization: str) -> tuple[str, str, str] | None:
    """``(credential, signed headers, signature)`` of a well-formed SigV4 header, else None. Cached:
    a request's header is read for routing, then for the check."""
    match = _AUTH_HEADER.match(authorization.strip())
    return (match["credential"], match["signed"], match["signature"]) if match else None


def _header_parts(request, authorization, secrets, now, region):
    parts = _authorization_parts(authorization)
    if not parts and authorization.startswith("AWS "):
        raise AuthFailure("malformed", "Signature Version 2 is not accepted here; sign requests with SigV4")
    if not parts:
        raise AuthFailure(
            "malformed",
            "the Authorization header is not 'AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...'",
        )
    scope, secret = _scope_of(parts[0], secrets, region, request)
    amz_date = _header(request, "x-amz-date")
    if not amz_date:
        raise AuthFailure("malformed", "a signed request needs an X-Amz-Date header")
    signed_at = _amz_time(amz_date)
    if abs(now - signed_at) > MAX_CLOCK_SKEW_S:
        raise AuthFailure(
            "expired",
            f"Signature expired: {amz_date} is now earlier or later than the service's clock by more than "
            f"{MAX_CLOCK_SKEW_S // 60} minutes.",
        )
    return parts, scope, secret, amz_date


def _verify_header(request, authorization, secrets, now, body_sha256, region) -> CredentialScope:
    (_, signed_headers, signature), scope, secret, amz_date = _header_parts(request, authorization, secrets, now, region)
    declared = _header(request, "x-amz-content-sha256")
    if body_sha256 is None:
        if not declared:
            raise AuthFailure("malformed", "an S3 request must declare x-amz-content-sha256")
        payload = declared
    else:
        if declared and declared != body_sha256 and declared != UNSIGNED_PAYLOAD:
            raise AuthFailure("mismatch", "x-amz-content-sha256 does not match the body that arrived")
        payload = declared or body_sha256
    signed = signed_headers.split(";")
    canonical = "\n".join(
        [
            request.method.upper(),
            _canonical_uri(request.raw_path, scope.service == "s3"),
            _canonical_query(request.query_string),
            _canonical_headers(request, signed),
            signed_headers,
            payload,
        ]
    )
    _check(secret, scope, amz_date, canonical, signature)
    return scope


def _verify_query(request, secrets, now, region) -> CredentialScope:
    params = {k: v[0] for k, v in parse_qs(request.query_string.decode("latin-1"), keep_blank_values=True).items()}
    if params.get("X-Amz-Algorithm") != ALGORITHM:
        raise AuthFailure("malformed", f"X-Amz-Algorithm must be {ALGORITHM}")
    scope, secret = _scope_of(params.get("X-Amz-Credential", ""), secrets, region, request, presigned=True)
    amz_date = params.get("X-Amz-Date", "")
    signed_at = _amz_time(amz_date)
    try:
        expires = int(params.get("X-Amz-Expires", "0"))
    except ValueError:
        raise AuthFailure("malformed", "X-Amz-Expires is not a number of seconds") from None
    if now > signed_at + expires:
        raise AuthFailure("expired", "Request has expired")
    signed = params.get("X-Amz-SignedHeaders", "host").split(";")
    canonical = "\n".join(
        [
            request.method.upper(),
            _canonical_uri(request.raw_path, scope.service == "s3"),
            _canonical_query(request.query_string, drop="X-Amz-Signature"),
            _canonical_headers(request, signed),
            ";".join(signed),
            UNSIGNED_PAYLOAD,
        ]
    )
    _check(secret, scope, amz_date, canonical, params.get("X-Amz-Signature", ""))
    return scope


# S3's older query signature (what boto3's generate_presigned_url makes for S3 unless told
# otherwise): HMAC-SHA1 of the method, Content-MD5, Content-Type, Expires and the resource.
_S3_SUBRESOURCES = (
    "acl", "cors", "delete", "lifecycle", "location", "logging", "notification", "partNumber", "policy",
    "requestPayment", "response-cache-control", "response-content-disposition", "response-content-encoding",
    "response-content-language", "response-content-type", "response-expires", "tagging", "torrent", "uploadId",
    "uploads", "versionId", "versioning", "versions", "website",
)  # fmt: skip


def _verify_s3_v2_query(request, secrets, now) -> CredentialScope:
    params = dict(parse_qsl(request.query_string.decode("latin-1"), keep_blank_values=True))
    key = params.get("AWSAccessKeyId", "")
    secret = secrets.get(key)
    if secret is None:
        raise AuthFailure("unknown-key", f"The access key id {key} is not one this service issued.")
    try:
        expires = int(params.get("Expires", ""))
    except ValueError:
        raise AuthFailure("malformed", "Expires is not a time in seconds since 1970") from None
    if now > expires:
        raise AuthFailure("expired", "Request has expired")
    subresources = sorted((name, value) for name, value in params.items() if name in _S3_SUBRESOURCES)
    resource = request.raw_path.decode("latin-1")
    if subresources:
        resource += "?" + "&".join(f"{name}={value}" if value else name for name, value in subresources)
    amz_headers = sorted(
        (name, value.strip())
        for name, values in request.header_values.items()
        if name.startswith("x-amz-")
        for value in values
    )
    string_to_sign = "\n".join(
        [
            request.method.upper(),
            _header(request, "content-md5") or "",
            _header(request, "content-type") or "",
            str(expires),
            *[f"{name}:{value}" for name, value in amz_headers],
            resource,
        ]
    )
    expected = base64.b64encode(hmac.new(secret.encode(), string_to_sign.encode(), sha1).digest()).decode()
    if not hmac.compare_digest(expected, params.get("Signature", "")):
        raise AuthFailure(
            "mismatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method.",
        )
    return CredentialScope(key, "", "", "s3")
