"""The SageMaker control plane's JSON 1.1 protocol: ``X-Amz-Target`` in, JSON out.

Requests are checked against botocore's own model of the SageMaker API, so a request that a
hand-written client gets wrong is refused with the ValidationException AWS would give: botocore's
validator for types and unknown members, ``validation`` for every constraint (required, lengths,
ranges, enums, patterns) in AWS's words. Every answer carries an ``x-amzn-RequestId``, as AWS's do.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import json
import uuid
from collections.abc import Callable
from typing import Any

import botocore.session
from botocore.validate import ParamValidator

from ..asgi import Request, Response
from . import validation
from .backend import SageMakerBackend
from .errors import SageMakerError, SerializationException, UnknownOperation, ValidationException
from .listing import ListQuery

MAX_CONTROL_BODY = 1024 * 1024


def new_request_id() -> str:
    """AWS's request ids are UUID4s."""
    return str(uuid.uuid4())


def error_response(error: SageMakerError, request_id: str | None = None) -> Response:
    return Response.json(
        {"__type": error.error_type, "message": error.message},
        status=error.status,
        content_type="application/x-amz-json-1.1",
        headers=[
            (b"x-amzn-errortype", error.error_type.encode()),
            (b"x-amzn-requestid", (request_id or new_request_id()).encode()),
        ],
    )


# botocore's findings that ``validation`` reports itself, in AWS's words.
_CHECKED_BY_VALIDATION = {"missing required field", "invalid length", "invalid range"}


class _Validator:
    """Checks a request against botocore's service model: types and unknown members with botocore's
    validator, then every constraint of the model with ``validation`` (as AWS words them)."""

    def __init__(self):
        self.model = botocore.session.get_session().get_service_model("sagemaker")
        self.validator = ParamValidator()

    def check(self, operation: str, params: dict[str, Any]) -> None:
        shape = self.model.operation_model(operation).input_shape
        report = self.validator.validate(_timestamps_to_datetimes(params, shape), shape)
        report._errors = [e for e in report._errors if e[0] not in _CHECKED_BY_VALIDATION]
        if report.has_errors():
            raise ValidationException(report.generate_report())
        violations = validation.request_violations(shape, params)
        if violations:
            raise ValidationException(validation.validation_message(violations))


def _timestamps_to_datetimes(value, shape):
    """JSON carries timestamps as epoch numbers; botocore's validator wants datetimes."""
    if shape is None:
        return value
    if shape.type_name == "timestamp" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value, tz=dt.UTC)
    if shape.type_name == "structure" and isinstance(value, dict):
        return {k: _timestamps_to_datetimes(v, shape.members.get(k)) for k, v in value.items()}
    if shape.type_name == "list" and isinstance(value, list):
        return [_timestamps_to_datetimes(v, shape.member) for v in value]
    return value


def _query(params: dict[str, Any]) -> ListQuery:
    """The List* request members (filters, time filters, sort, paging); the backend applies each operation's defaults."""
    return ListQuery.from_request(params)


def _listing(key: str, items: list[dict[str, Any]], next_token: str | None) -> dict[str, Any]:
    return {key: items, **({"NextToken": next_token} if next_token else {})}


class SageMakerResponses:
    """Maps each operation to the backend; one method an operation, named as AWS names it."""

    def __init__(self, backend: SageMakerBackend):
        self.backend = backend
        self.validator = _Validator()
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="control-plane")
        self.operations: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            name: getattr(self, name) for name in self.implemented()
        }

    @classmethod
    def implemented(cls) -> list[str]:
        """The operations this control plane answers: its methods named as AWS names them."""
        return sorted(name for name in dir(cls) if name[:1].isupper())

    async def handle(self, request: Request) -> Response:
        operation = request.headers.get("x-amz-target", "").partition(".")[2]
        request_id = new_request_id()
        try:
            body = await request.read_body(MAX_CONTROL_BODY)
            if operation not in self.operations:
                raise UnknownOperation(f"Operation {operation or '(none)'} is not supported by the local SageMaker.")
            try:
                params = json.loads(body or b"{}")
            except ValueError as exc:
                raise SerializationException(f"The request body is not valid JSON: {exc}") from exc
            if not isinstance(params, dict):
                raise SerializationException("The request body must be a JSON object.")
            # Off the event loop: a handler may wait for the loop itself (tearing down an endpoint
            # publishes its last metrics through the service's own CloudWatch), and checking a
            # large request against the model takes a while.
            result = await asyncio.get_running_loop().run_in_executor(self.executor, self._call, operation, params)
            return Response.json(
                result,
                content_type="application/x-amz-json-1.1",
                headers=[(b"x-amzn-requestid", request_id.encode())],
            )
        except SageMakerError as error:
            return error_response(error, request_id)

    def _call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        self.validator.check(operation, params)
        return self.operations[operation](params)

    # tags ------------------------------------------------------------------------------------

    def AddTags(self, params):
        self.backend.add_tags(params["ResourceArn"], params["Tags"])
        return {"Tags": params["Tags"]}

    def ListTags(self, params):
        return {"Tags": self.backend.list_tags(params["ResourceArn"])}

    def DeleteTags(self, params):
        self.backend.delete_tags(params["ResourceArn"], params["TagKeys"])
        return {}

    # training jobs ---------------------------------------------------------------------------

    def CreateTrainingJob(self, params):
        return {"TrainingJobArn": self.backend.create_training_job(params).arn}

    def DescribeTrainingJob(self, params):
        return self.backend.describe_training_job(params["TrainingJobName"])

    def StopTrainingJob(self, params):
        self.backend.stop_training_job(params["TrainingJobName"])
        return {}

    def ListTrainingJobs(self, params):
        jobs, next_token = self.backend.list_training_jobs(_query(params))
        summaries = []
        for job in jobs:
            summary = {
                "TrainingJobName": job.name,
                "TrainingJobArn": job.arn,
                "CreationTime": job.creation_time,
                "LastModifiedTime": job.last_modified_time,
                "TrainingJobStatus": job.status,
            }
            if job.end_time:
                summary["TrainingEndTime"] = job.end_time
            summaries.append(summary)
        return _listing("TrainingJobSummaries", summaries, next_token)

    # models ----------------------------------------------------------------------------------

    def CreateModel(self, params):
        return {"ModelArn": self.backend.create_model(params).arn}

    def DescribeModel(self, params):
        return self.backend.get_model(params["ModelName"]).describe()

    def DeleteModel(self, params):
        self.backend.delete_model(params["ModelName"])
        return {}

    def ListModels(self, params):
        models, next_token = self.backend.list_models(_query(params))
        summaries = [{"ModelName": m.name, "ModelArn": m.arn, "CreationTime": m.creation_time} for m in models]
        return _listing("Models", summaries, next_token)

    # endpoint configs --------------------------------------------------------------------------

    def CreateEndpointConfig(self, params):
        return {"EndpointConfigArn": self.backend.create_endpoint_config(params).arn}

    def DescribeEndpointConfig(self, params):
        return self.backend.get_endpoint_config(params["EndpointConfigName"]).describe()

    def DeleteEndpointConfig(self, params):
        self.backend.delete_endpoint_config(params["EndpointConfigName"])
        return {}

    def ListEndpointConfigs(self, params):
        configs, next_token = self.backend.list_endpoint_configs(_query(params))
        summaries = [
            {"EndpointConfigName": c.name, "EndpointConfigArn": c.arn, "CreationTime": c.creation_time} for c in configs
        ]
        return _listing("EndpointConfigs", summaries, next_token)

    # endpoints -----------------------------------------------------------------------------------

    def CreateEndpoint(self, params):
        return {"EndpointArn": self.backend.create_endpoint(params).arn}

    def DescribeEndpoint(self, params):
        return self.backend.describe_endpoint(params["EndpointName"])

    def UpdateEndpoint(self, params):
        return {"EndpointArn": self.backend.update_endpoint(params).arn}

    def DeleteEndpoint(self, params):
        self.backend.delete_endpoint(params["EndpointName"])
        return {}

    def ListEndpoints(self, params):
        endpoints, next_token = self.backend.list_endpoints(_query(params))
        summaries = [
            {
                "EndpointName": e.name,
                "EndpointArn": e.arn,
                "CreationTime": e.creation_time,
                "LastModifiedTime": e.last_modified_time,
                "EndpointStatus": e.status,
            }
            for e in endpoints
        ]
        return _listing("Endpoints", summaries, next_token)
