"""Only requests signed with the service's own credentials are answered.

Every request (S3, the SageMaker control plane, the runtime, CloudWatch, ``/_local``) must carry a
valid SigV4 signature made with the access key the service generated at start. A refusal is a 403
in the caller's protocol, with the error code AWS uses, so that boto3 raises the exception a user
would see on AWS (``InvalidSignatureException``, ``UnrecognizedClientException``,
``SignatureDoesNotMatch``, ``InvalidAccessKeyId``, ...).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

from .asgi import Request, Response
from .sigv4 import AuthFailure, CredentialScope, precheck, verify

# kind of failure -> error code in the S3 (rest-xml), JSON / rest-json / CBOR, and query protocols
CODES = {
    "missing": ("AccessDenied", "MissingAuthenticationTokenException", "MissingAuthenticationToken"),
    "malformed": ("AuthorizationHeaderMalformed", "IncompleteSignatureException", "IncompleteSignature"),
    "unknown-key": ("InvalidAccessKeyId", "UnrecognizedClientException", "InvalidClientTokenId"),
    "mismatch": ("SignatureDoesNotMatch", "InvalidSignatureException", "SignatureDoesNotMatch"),
    "expired": ("RequestTimeTooSkewed", "InvalidSignatureException", "SignatureDoesNotMatch"),
    "region": ("AuthorizationHeaderMalformed", "InvalidSignatureException", "SignatureDoesNotMatch"),
}
QUERY_SERVICES = {"sts", "iam", "sns", "sqs", "ec2"}


class Authenticator:
    """The credentials the service accepts, and the check every request goes through."""

    def __init__(
        self, access_key_id: str, secret_access_key: str, region: str | None = None, clock: Callable[[], float] = time.time
    ):
        self.secrets = {access_key_id: secret_access_key}
        self.region = region
        self.clock = clock

    def check(self, request: Request, body_sha256: str | None) -> CredentialScope:
        return verify(request, self.secrets, self.clock(), body_sha256, self.region)

    def precheck(self, request: Request) -> None:
        """What can be refused before the body is read (see ``sigv4.precheck``)."""
        precheck(request, self.secrets, self.clock(), self.region)


def protocol_of(request: Request, scope: CredentialScope | None) -> str:
    """How the caller expects its errors: ``s3``, ``json``, ``cbor`` or ``query``."""
    return protocol_for(request.headers, request.path, scope.service if scope else "")


def protocol_for(headers, path: str, service: str) -> str:
    """``protocol_of`` from the parts (lower-case header names): moto's side has no ``Request``."""
    content_type = headers.get("content-type", "")
    if headers.get("smithy-protocol") == "rpc-v2-cbor":
        return "cbor"
    if "x-amz-target" in headers or content_type.startswith("application/x-amz-json"):
        return "json"
    if path.startswith(("/_local/", "/endpoints/")):
        return "json"
    if service == "sagemaker":
        return "json"
    if service in QUERY_SERVICES or content_type.startswith("application/x-www-form-urlencoded"):
        return "query"
    return "s3"


def denied(failure: AuthFailure, protocol: str) -> Response:
    """The 403 a caller of ``protocol`` gets from AWS for this kind of failure (S3's refusals of
    a credential scoped to another region are 400s that name the region expected)."""
    s3_code, json_code, query_code = CODES[failure.kind]
    message = failure.message
    if protocol == "s3":
        status, extra = 403, {}
        if failure.kind == "missing":
            message = "Access Denied"
        elif failure.kind == "expired" and message == "Request has expired":
            s3_code = "AccessDenied"
        elif failure.kind == "region":
            region = failure.region or ""
            code = "AuthorizationQueryParametersError" if failure.presigned else s3_code
            response = aws_error("s3", 400, code, message, {"Region": region})
            response.headers.append((b"x-amz-bucket-region", region.encode()))  # botocore re-signs for it
            return response
        return aws_error("s3", status, s3_code, message, extra)
    return aws_error(protocol, 403, query_code if protocol == "query" else json_code, message)


def aws_error(protocol: str, status: int, code: str, message: str, extra: dict[str, str] | None = None) -> Response:
    """An error as AWS sends it in ``protocol`` (``s3``, ``query``, ``json`` or ``cbor``), so that
    botocore raises a ClientError with this code and message; ``extra``: S3's further elements."""
    request_id = str(uuid.uuid4())
    if protocol == "s3":
        elements = "".join(f"<{name}>{_xml(value)}</{name}>" for name, value in (extra or {}).items())
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{_xml(message)}</Message>{elements}<RequestId>{request_id}</RequestId></Error>"
        )
        return Response(
            status, body.encode(), [(b"content-type", b"application/xml"), (b"x-amz-request-id", request_id.encode())]
        )
    if protocol == "query":
        body = (
            '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type>'
            f"<Code>{code}</Code><Message>{_xml(message)}</Message></Error><RequestId>{request_id}</RequestId>"
            "</ErrorResponse>"
        )
        return Response(status, body.encode(), [(b"content-type", b"text/xml"), (b"x-amzn-requestid", request_id.encode())])
    headers = [(b"x-amzn-errortype", code.encode()), (b"x-amzn-requestid", request_id.encode())]
    if protocol == "cbor":
        body = _cbor_map({"__type": code, "message": message})
        cbor_headers = [(b"content-type", b"application/cbor"), (b"smithy-protocol", b"rpc-v2-cbor")]
        return Response(status, body, [*cbor_headers, *headers])
    payload = json.dumps({"__type": code, "message": message, "Message": message}).encode()
    return Response(status, payload, [(b"content-type", b"application/x-amz-json-1.1"), *headers])


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cbor_text(text: str) -> bytes:
    data = text.encode()
    size = len(data)
    if size < 24:
        head = bytes([0x60 | size])
    elif size < 256:
        head = bytes([0x78, size])
    else:
        head = bytes([0x79]) + size.to_bytes(2, "big")
    return head + data


def _cbor_map(items: dict[str, str]) -> bytes:
    """A CBOR map of short text strings: all an error body needs (RFC 8949, major types 3 and 5)."""
    return bytes([0xA0 | len(items)]) + b"".join(_cbor_text(k) + _cbor_text(v) for k, v in items.items())
