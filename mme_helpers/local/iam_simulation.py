"""IAM's policy simulator for the local service: ``SimulatePrincipalPolicy`` (moto has none).

SDK v3 checks an execution role before it trains (``iam:SimulatePrincipalPolicy`` on the role,
then its trust policy); SageMaker refuses a role it cannot assume. Both questions are answered
here from the roles moto's IAM holds: a role's identity policies (inline and attached) are
evaluated as IAM evaluates them without conditions — an explicit ``Deny`` wins, then an ``Allow``,
else the implicit deny; ``Action``/``NotAction`` and ``Resource``/``NotResource`` with ``*`` and
``?`` wildcards (actions case-insensitive). A statement with a ``Condition`` is not applied (the
simulator would need context values the caller did not give), and says so in the answer's
``MissingContextValues``.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote

from .asgi import Request, Response
from .auth import aws_error
from .config import ACCOUNT_ID

IAM_XMLNS = "https://iam.amazonaws.com/doc/2010-05-08/"
SAGEMAKER_PRINCIPAL = "sagemaker.amazonaws.com"
ALLOWED, IMPLICIT_DENY, EXPLICIT_DENY = "allowed", "implicitDeny", "explicitDeny"


@dataclass(frozen=True)
class Statement:
    """One statement of a policy, with where it came from (for ``MatchedStatements``)."""

    policy_id: str
    policy_type: str  # IAM's names: "IAM Policy" (inline), "AWS Managed Policy", ...
    body: dict

    def _values(self, key: str) -> list[str] | None:
        value = self.body.get(key)
        if value is None:
            return None
        return [value] if isinstance(value, str) else list(value)

    def applies(self, action: str, resource: str) -> bool:
        actions, not_actions = self._values("Action"), self._values("NotAction")
        if actions is not None and not any(_matches(p, action, fold=True) for p in actions):
            return False
        if not_actions is not None and any(_matches(p, action, fold=True) for p in not_actions):
            return False
        resources, not_resources = self._values("Resource"), self._values("NotResource")
        if resources is not None and not any(_matches(p, resource) for p in resources):
            return False
        return not_resources is None or not any(_matches(p, resource) for p in not_resources)

    @property
    def conditional(self) -> bool:
        return bool(self.body.get("Condition"))


def _matches(pattern: str, value: str, fold: bool = False) -> bool:
    """IAM's wildcards: ``*`` any run of characters (``/`` and ``:`` too), ``?`` one character."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE if fold else 0) is not None


def _statements(policy_id: str, policy_type: str, document) -> list[Statement]:
    if isinstance(document, str):
        document = json.loads(unquote(document) if document.lstrip().startswith("%") else document)
    body = document.get("Statement", [])
    return [Statement(policy_id, policy_type, s) for s in ([body] if isinstance(body, dict) else body)]


@dataclass(frozen=True)
class Evaluation:
    action: str
    resource: str
    decision: str
    matched: tuple[Statement, ...]
    missing_context: tuple[str, ...]


def evaluate(statements: list[Statement], action: str, resource: str = "*") -> Evaluation:
    """The decision for one action on one resource: explicit deny, allowed, or implicit deny."""
    applicable = [s for s in statements if s.applies(action, resource)]
    unconditional = [s for s in applicable if not s.conditional]
    missing = tuple(sorted({key for s in applicable if s.conditional for c in s.body["Condition"].values() for key in c}))
    denies = [s for s in unconditional if s.body.get("Effect") == "Deny"]
    if denies:
        return Evaluation(action, resource, EXPLICIT_DENY, tuple(denies), missing)
    allows = [s for s in unconditional if s.body.get("Effect") == "Allow"]
    if allows:
        return Evaluation(action, resource, ALLOWED, tuple(allows), missing)
    return Evaluation(action, resource, IMPLICIT_DENY, (), missing)


# the roles moto's IAM holds ---------------------------------------------------------------------


def _iam_backend():
    from moto.iam.models import iam_backends

    return iam_backends[ACCOUNT_ID]["global"]


def find_role(arn: str):
    """moto's role with this ARN, or None."""
    for role in _iam_backend().roles.values():
        if role.arn == arn:
            return role
    return None


def identity_statements(role) -> list[Statement]:
    """Every statement of the role's inline and attached policies."""
    found: list[Statement] = []
    for name, document in role.policies.items():
        found += _statements(name, "IAM Policy", document)
    for arn, policy in role.managed_policies.items():
        version = next((v for v in policy.versions if v.is_default), policy.versions[0])
        kind = "AWS Managed Policy" if ":aws:policy/" in arn else "IAM Policy"
        found += _statements(policy.name, kind, version.document)
    return found


def trusts(role, service: str = SAGEMAKER_PRINCIPAL) -> bool:
    """Whether the role's trust policy lets ``service`` call ``sts:AssumeRole`` on it."""
    for statement in _statements("trust", "trust", role.assume_role_policy_document):
        body = statement.body
        principal = body.get("Principal")
        services = principal.get("Service", []) if isinstance(principal, dict) else []
        services = [services] if isinstance(services, str) else services
        if body.get("Effect") == "Allow" and service in services and statement.applies("sts:AssumeRole", role.arn):
            return True
    return False


def assumable_by_sagemaker(role_arn: str) -> bool:
    """What SageMaker checks when a job or model names a role: it exists and trusts SageMaker."""
    role = find_role(role_arn)
    return role is not None and trusts(role)


# the query-protocol operation --------------------------------------------------------------------


def is_simulation(request: Request) -> bool:
    """An IAM query request for ``SimulatePrincipalPolicy`` (its body already read and checked)."""
    return request.method == "POST" and b"Action=SimulatePrincipalPolicy" in request.body


def _members(params: dict[str, list[str]], name: str) -> list[str]:
    prefix = f"{name}.member."
    numbered = [(int(key[len(prefix) :]), values[0]) for key, values in params.items() if key.startswith(prefix)]
    return [value for _, value in sorted(numbered)]


def simulate_principal_policy(request: Request) -> Response:
    """The answer IAM gives, in its query protocol (XML), for a role's ARN."""
    params = parse_qs(request.body.decode(), keep_blank_values=True)
    source = params.get("PolicySourceArn", [""])[0]
    actions = _members(params, "ActionNames")
    resources = _members(params, "ResourceArns") or ["*"]
    if not source or not actions:
        missing = "PolicySourceArn" if not source else "ActionNames"
        message = f"1 validation error detected: Value null at '{missing}' failed to satisfy constraint: "
        message += "Member must not be null"
        return aws_error("query", 400, "ValidationError", message)
    role = find_role(source)
    if role is None:
        if ":role/" not in source:
            message = f"Invalid Entity Arn: {source} does not clearly define entity type."
            return aws_error("query", 400, "InvalidInput", message)
        return aws_error("query", 404, "NoSuchEntity", f"The role with name {source.rsplit('/', 1)[-1]} cannot be found.")
    statements = identity_statements(role)
    results = [evaluate(statements, action, resource) for action in actions for resource in resources]
    return Response(200, _xml_answer(results).encode(), [(b"content-type", b"text/xml")])


def _xml_answer(results: list[Evaluation]) -> str:
    members = []
    for result in results:
        matched = "".join(
            f"<member><SourcePolicyId>{_x(s.policy_id)}</SourcePolicyId><SourcePolicyType>{_x(s.policy_type)}"
            "</SourcePolicyType></member>"
            for s in result.matched
        )
        missing = "".join(f"<member>{_x(key)}</member>" for key in result.missing_context)
        members.append(
            f"<member><EvalActionName>{_x(result.action)}</EvalActionName>"
            f"<EvalResourceName>{_x(result.resource)}</EvalResourceName>"
            f"<EvalDecision>{result.decision}</EvalDecision>"
            f"<MatchedStatements>{matched}</MatchedStatements>"
            f"<MissingContextValues>{missing}</MissingContextValues></member>"
        )
    return (
        f'<SimulatePrincipalPolicyResponse xmlns="{IAM_XMLNS}"><SimulatePrincipalPolicyResult>'
        f"<IsTruncated>false</IsTruncated><EvaluationResults>{''.join(members)}</EvaluationResults>"
        f"</SimulatePrincipalPolicyResult><ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
        "</SimulatePrincipalPolicyResponse>"
    )


def _x(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

