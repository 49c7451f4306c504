"""What stands between a caller and moto: S3 bodies checked against the hash they were signed
with (and a PUT without a Content-Length refused, as S3 refuses it: 411 ``MissingContentLength``;
moto read no body from it and stored an empty object), and an operation moto does not implement
answered in the caller's protocol.

- An S3 request signs ``x-amz-content-sha256`` (the body's SHA-256), not the body itself: the
  signature check (``sigv4``) cannot see a body changed on the way. The body is hashed here as it
  streams to moto, and the last of it is handed on only once the whole matches: a mismatch is
  S3's ``XAmzContentSHA256Mismatch`` (400) and moto never gets a complete body, so it stores
  nothing. ``UNSIGNED-PAYLOAD`` and the ``STREAMING-*`` (``aws-chunked``) forms declare no hash
  of the body and pass as they are.
- moto raises ``NotImplementedError`` for an operation it does not implement, which its server
  turns into a plain-text ``500 Internal Server Error`` botocore cannot parse. Here it becomes the
  error AWS gives in the caller's protocol, naming the operation: ``UnknownOperationException``
  (JSON, CBOR), ``InvalidAction`` (query), ``NotImplemented`` (S3). Any other failure inside moto is
  a parsable ``InternalFailure`` (S3: ``InternalError``), also naming the operation, never a bare 500.
"""

from __future__ import annotations

import re
from functools import lru_cache
from hashlib import sha256

from .auth import aws_error, protocol_for
from .sigv4 import credential_scope

_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
_MOTO_UNIMPLEMENTED = re.compile(r"The (\w+) action has not been implemented")
MISMATCH_MESSAGE = "The provided 'x-amz-content-sha256' header does not match what was computed."


class ContentMismatch(Exception):
    """The body that arrived is not the one the request was signed for."""


class _CheckedBody:
    """An ASGI ``receive`` that hashes the body as it passes and keeps one message in hand, so
    that the last bytes go on only after the whole body's hash is known to match."""

    def __init__(self, receive, declared: str):
        self.upstream = receive
        self.declared = declared
        self.digest = sha256()
        self.ahead: dict | None = None
        self.computed: str | None = None  # set on a mismatch

    async def receive(self) -> dict:
        message = self.ahead if self.ahead is not None else await self._read()
        self.ahead = None
        if message["type"] == "http.request" and message.get("more_body", False):
            self.ahead = await self._read()  # the next part is in hand (and checked, if last) first
        return message

    async def _read(self) -> dict:
        message = await self.upstream()
        if message["type"] == "http.request":
            self.digest.update(message.get("body", b""))
            if not message.get("more_body", False):
                computed = self.digest.hexdigest()
                if computed != self.declared:
                    self.computed = computed
                    raise ContentMismatch(computed)
        return message


def _declared_sha256(scope) -> str | None:
    """The body hash a header-signed S3 request declares, if it declares one."""
    authorization = declared = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"x-amz-content-sha256":
            declared = value.decode("latin-1")
    if authorization is None or declared is None or not _HEX_SHA256.fullmatch(declared):
        return None
    signed_for = credential_scope(authorization)
    return declared if signed_for is not None and signed_for.service == "s3" else None


def _length_unknown(scope) -> bool:
    """A body sent in chunks with no Content-Length (``aws-chunked`` declares its decoded length)."""
    names = {name for name, _ in scope["headers"]}
    return b"content-length" not in names and b"x-amz-decoded-content-length" not in names and b"transfer-encoding" in names


class PayloadCheckedMoto:
    """moto's ASGI app, with S3 bodies checked against their declared hash on the way in."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        declared = None
        if scope["type"] == "http" and scope["method"] in ("PUT", "POST"):
            if scope["method"] == "PUT" and _length_unknown(scope):
                # moto reads no body without a Content-Length (it stored an empty object): S3 asks for one
                message = "You must provide the Content-Length HTTP header."
                await aws_error("s3", 411, "MissingContentLength", message).send(send)
                return
            declared = _declared_sha256(scope)
        if declared is None:
            await self.app(scope, receive, send)
            return
        body = _CheckedBody(receive, declared)

        async def unless_refused(message):
            if body.computed is None:  # moto's answer to a body it never fully got is dropped
                await send(message)

        try:
            await self.app(scope, body.receive, unless_refused)
        except ContentMismatch:
            pass
        except Exception:
            if body.computed is None:
                raise
        if body.computed is not None:
            extra = {"ClientComputedContentSHA256": declared, "S3ComputedContentSHA256": body.computed}
            await aws_error("s3", 400, "XAmzContentSHA256Mismatch", MISMATCH_MESSAGE, extra).send(send)


def guarded_moto(wsgi_app, workers: int = 8):
    """moto's WSGI app as the service's ASGI app, with the checks above."""
    from a2wsgi import WSGIMiddleware

    return PayloadCheckedMoto(WSGIMiddleware(_reading_chunked_bodies(wsgi_app), workers=workers))


def _reading_chunked_bodies(app):
    """werkzeug reads no body that has no Content-Length unless told that the input ends by itself
    (``wsgi.input_terminated``): an ``aws-chunked`` upload sent with ``Transfer-Encoding: chunked``
    (how botocore sends one) was stored empty."""

    def application(environ, start_response):
        if "CONTENT_LENGTH" not in environ and environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
            environ["wsgi.input_terminated"] = True
        return app(environ, start_response)

    return application


# Operations moto does not implement ------------------------------------------------------------------


def answering_unknown_operations(create_backend_app):
    """moto's app maker, each service's app answering what moto cannot do in its protocol."""
    from functools import partial

    def create(service: str):
        app = create_backend_app(service)
        app.register_error_handler(Exception, partial(_moto_failure, service))
        return app

    return create


def _moto_failure(service: str, error: Exception):
    from flask import Response as FlaskResponse
    from flask import request
    from werkzeug.exceptions import HTTPException

    if isinstance(error, HTTPException):
        return error  # werkzeug's own answers (404 for a path no service has) stay as they are
    if isinstance(error, ContentMismatch):
        return FlaskResponse(b"", status=400)  # PayloadCheckedMoto drops this and answers itself
    headers = {name.lower(): value for name, value in request.headers.items()}
    protocol = protocol_for(headers, request.path, service)
    operation = _operation(service, protocol, request, error)
    if isinstance(error, NotImplementedError) or protocol == "s3":
        # moto's S3 raises on a request it cannot place (a POST it takes for a form upload, ...)
        response = _unknown_operation(protocol, service, operation)
    else:
        cause = f"{type(error).__name__}: {error}"
        response = aws_error(protocol, 500, "InternalFailure", f"{operation} failed in the local {service}: {cause}")
    return FlaskResponse(
        response.body, status=response.status, headers=[(k.decode(), v.decode()) for k, v in response.headers]
    )


def _unknown_operation(protocol: str, service: str, operation: str):
    if protocol == "query":
        message = f"The action {operation} is not valid for this web service: the local {service} does not implement it."
        return aws_error("query", 400, "InvalidAction", message)
    if protocol == "s3":
        return aws_error("s3", 501, "NotImplemented", f"{operation} is not implemented by the local S3.")
    message = f"Operation {operation} is not supported by the local {service}."
    return aws_error(protocol, 400, "UnknownOperationException", message)


def _operation(service: str, protocol: str, request, error: Exception) -> str:
    """The AWS name of the operation asked for, as well as the request tells it."""
    if protocol == "query" and request.values.get("Action"):
        return request.values["Action"]
    target = request.headers.get("X-Amz-Target")
    if target:
        return target.rsplit(".", 1)[-1]
    if protocol == "cbor" and "/operation/" in request.path:
        return request.path.rsplit("/", 1)[-1]
    named = _MOTO_UNIMPLEMENTED.search(str(error))
    if named:
        return _operation_names(service).get(named.group(1), named.group(1))
    if service == "s3":
        return _s3_operation(request.method, request.path, set(request.args)) or f"{request.method} {request.path}"
    return f"{request.method} {request.path}"


@lru_cache(maxsize=16)
def _service_model(service: str):
    import botocore.session

    return botocore.session.get_session().get_service_model(service)


@lru_cache(maxsize=16)
def _operation_names(service: str) -> dict[str, str]:
    """moto's snake_case action names → AWS's operation names."""
    from botocore import xform_name

    try:
        names = _service_model(service).operation_names
    except Exception:
        return {}
    return {xform_name(name): name for name in names}


def _s3_operation(method: str, path: str, query: set[str]) -> str | None:
    """The S3 operation whose HTTP binding (method, bucket or key, query markers) fits best."""
    level = min(path.strip("/").count("/") + 1, 2) if path.strip("/") else 0
    best, best_markers = None, -1
    model = _service_model("s3")
    for name in model.operation_names:
        http = model.operation_model(name).http
        if http.get("method") != method:
            continue
        uri, _, markers = http.get("requestUri", "").partition("?")
        uri_level = 0 if uri == "/" else (2 if "{Key+}" in uri else 1)
        wanted = {marker.split("=")[0] for marker in markers.split("&") if marker}
        if uri_level == level and wanted <= query and len(wanted) > best_markers:
            best, best_markers = name, len(wanted)
    return best
