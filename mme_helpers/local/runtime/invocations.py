"""SageMaker Runtime ``InvokeEndpoint``: ``POST /endpoints/{name}/invocations``.

Status codes, ``x-amzn-ErrorType`` and bodies are AWS's (see the contract, section 6); where AWS
would only say "Prediction failed", the message carries the real cause.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from urllib.parse import unquote

import numpy as np

from ..asgi import BodyTooLarge, Request, Response
from ..config import ACCOUNT_ID
from . import codecs
from .registry import ModelLoadError, ModelNotFound, ModelNotReady

MAX_PAYLOAD = 6 * 1024 * 1024  # 6,291,456 bytes
MAX_TARGET_MODEL = 1024
INLINE_PREDICTION_BYTES = 64 * 1024  # larger payloads are parsed and predicted off the event loop
# Not an AWS header: local mode's own, on a multi-model endpoint's answers, saying which of its instances
# (0, 1, ...) served the request, as loaded_models' "instance" column numbers them.
INSTANCE_HEADER = b"x-mme-local-instance"


def new_request_id() -> str:
    """A request id as AWS's look: a random (version 4) UUID. Not a secret, so from ``random``:
    ``uuid.uuid4`` asks the kernel for 16 bytes on every request."""
    digits = f"{random.getrandbits(128):032x}"
    variant = "89ab"[int(digits[16], 16) & 3]
    return f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-{variant}{digits[17:20]}-{digits[20:]}"


class InvokeError(Exception):
    """An InvokeEndpoint error with AWS's status and type."""

    def __init__(self, status: int, error_type: str, message: str, **members):
        super().__init__(message)
        self.status, self.error_type, self.message, self.members = status, error_type, message, members


def _error(request_id: str, error: InvokeError) -> Response:
    payload = {"message": error.message, "Message": error.message, **error.members}
    return Response.json(
        payload,
        status=error.status,
        headers=[(b"x-amzn-errortype", error.error_type.encode()), (b"x-amzn-requestid", request_id.encode())],
    )


class InvocationHandler:
    def __init__(self, backend, metrics, region: str, executor):
        self.backend = backend
        self.metrics = metrics
        self.region = region
        self.executor = executor

    async def handle(self, request: Request, endpoint_name: str) -> Response:
        request_id = new_request_id()
        started = time.perf_counter()
        endpoint = self.backend.serving_endpoint(endpoint_name)
        # an endpoint being updated keeps serving from its current runtime, as on AWS
        runtime = endpoint.runtime if endpoint is not None and endpoint.status in ("InService", "Updating") else None
        points: list[tuple[str, float, str]] = []  # this request's datapoints, recorded at once
        try:
            if runtime is None:
                raise InvokeError(400, "ValidationError", f"Endpoint {endpoint_name} of account {ACCOUNT_ID} not found.")
            try:
                body = await request.read_body(MAX_PAYLOAD)
            except BodyTooLarge as too_large:
                size = f"{too_large.size:,} bytes" if too_large.size else "more than 6 MB"
                raise InvokeError(
                    413,
                    "ValidationError",
                    f"Request payload is {size}; the limit for real-time endpoints is {MAX_PAYLOAD:,} bytes (6 MB).",
                ) from None
            response, model_latency_us = await self._invoke(request, body, runtime, request_id, points, endpoint_name)
        except InvokeError as error:
            points += [  # AWS: a 1 or a 0 to each of these per request
                ("Invocation4XXErrors", 1 if error.status < 500 else 0, "Count"),
                ("Invocation5XXErrors", 1 if error.status >= 500 else 0, "Count"),
                ("InvocationModelErrors", 1 if error.error_type == "ModelError" else 0, "Count"),
            ]
            return _error(request_id, error)
        else:
            points += [
                ("Invocation4XXErrors", 0, "Count"),
                ("Invocation5XXErrors", 0, "Count"),
                ("InvocationModelErrors", 0, "Count"),
                ("OverheadLatency", (time.perf_counter() - started) * 1e6 - model_latency_us, "Microseconds"),
            ]
            return response
        finally:
            if runtime is not None:
                self.metrics.record_all(endpoint_name, runtime.variant, points)

    async def _invoke(self, request, body, runtime, request_id, points, endpoint_name) -> tuple[Response, float]:
        headers = request.headers
        variant = headers.get("x-amzn-sagemaker-target-variant")
        if variant is not None and variant != runtime.variant:  # AWS refuses a variant the endpoint lacks
            raise InvokeError(400, "ValidationError", f"Variant {variant} not found for endpoint {endpoint_name}.")
        target = headers.get("x-amzn-sagemaker-target-model")
        if target is not None and runtime.multi_model is False:
            raise InvokeError(
                400,
                "ValidationError",
                f"Endpoint {endpoint_name} is not a multi-model endpoint and does not support target model header.",
            )
        if runtime.multi_model and not target:
            raise InvokeError(400, "ValidationError", f"Request {request_id} is missing a target model header.")
        if target is not None and len(target) > MAX_TARGET_MODEL:
            raise InvokeError(
                400,
                "ValidationError",
                "1 validation error detected: Value at 'targetModel' failed to satisfy constraint: "
                f"Member must have length less than or equal to {MAX_TARGET_MODEL}",
            )
        points.append(("Invocations", 1, "Count"))
        try:
            accept = codecs.choose_accept(headers.get("accept"), runtime.default_accept)
        except codecs.PayloadError as exc:
            raise _model_error(runtime, exc) from None
        model_started = time.perf_counter()
        served_by = []  # INSTANCE_HEADER, on a multi-model answer
        if runtime.multi_model:
            try:
                async with runtime.serving(target) as served:
                    points.append(("ModelCacheHit", 1 if served.hit else 0, "Count"))
                    try:
                        predictions = await self._predict(served.model, body, headers.get("content-type"))
                    except codecs.PayloadError as exc:
                        raise _model_error(runtime, exc) from None
                    served_by = [(INSTANCE_HEADER, str(served.instance).encode())]
            except ModelNotFound as missing:
                raise InvokeError(
                    400,
                    "ValidationError",
                    f"Failed to download model data(bucket: {missing.bucket}, key: {missing.key}). Please ensure "
                    "that there is an object located at the URL and that the role passed to CreateModel has "
                    "permissions to download the model.",
                ) from None
            except ModelNotReady:
                raise InvokeError(
                    429,
                    "ModelNotReadyException",
                    f"Model {target} is still loading; the load goes on in the background. Retry the request.",
                ) from None
            except ModelLoadError as exc:
                raise _model_error(runtime, exc, getattr(exc, "status", 503)) from None
        else:
            try:
                predictions = await self._predict(runtime.model, body, headers.get("content-type"))
            except codecs.PayloadError as exc:
                raise _model_error(runtime, exc) from None
        model_latency_us = (time.perf_counter() - model_started) * 1e6
        points.append(("ModelLatency", model_latency_us, "Microseconds"))
        response = Response(
            status=200,
            body=codecs.encode(predictions, accept),
            headers=[
                (b"content-type", accept.encode()),
                (b"x-amzn-requestid", request_id.encode()),
                (b"x-amzn-invoked-production-variant", runtime.variant.encode()),
                *served_by,
            ],
        )
        return response, model_latency_us

    async def _predict(self, model, body: bytes, content_type: str | None) -> np.ndarray:
        if len(body) <= INLINE_PREDICTION_BYTES:  # a coroutine that does not wait: no task switch
            return _decode_and_predict(model, body, content_type)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, _decode_and_predict, model, body, content_type)


def _decode_and_predict(model, body: bytes, content_type: str | None) -> np.ndarray:
    features = codecs.decode(body, content_type, model.num_features)
    try:
        return model.predict(features)
    except Exception as exc:  # XGBoost's own refusal, worded by XGBoost
        raise codecs.PayloadError(f"XGBoost could not predict: {str(exc).strip().splitlines()[0][:300]}") from exc


def _model_error(runtime, exc: Exception, status: int = 503) -> InvokeError:
    """A container-side failure: SageMaker answers 424 ModelError and passes the container's words on."""
    kind = "InsufficientMemory" if status == 507 else "InternalServerException"
    original = json.dumps({"code": status, "type": kind, "message": str(exc)})
    log_group = f"/aws/sagemaker/Endpoints/{runtime.name}"
    return InvokeError(
        424,
        "ModelError",
        f'Received server error ({status}) from primary with message "{original}". See '
        f"https://{runtime.region}.console.aws.amazon.com/cloudwatch/home?region={runtime.region}"
        f"#logEventViewer:group={log_group} in account {ACCOUNT_ID} for more information.",
        OriginalStatusCode=status,
        OriginalMessage=original,
        LogStreamArn=f"arn:aws:logs:{runtime.region}:{ACCOUNT_ID}:log-group:{log_group}",
    )


def endpoint_name_from_path(raw_path: bytes) -> str | None:
    """``/endpoints/{EndpointName}/invocations`` -> the name; None for any other path."""
    parts = raw_path.split(b"/")
    if len(parts) == 4 and parts[0] == b"" and parts[1] == b"endpoints" and parts[3] == b"invocations":
        return unquote(parts[2].decode("latin-1"))
    return None
