"""What the ``List*`` operations filter, sort and page by, with each operation's documented defaults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.utils import parse_timestamp

from .errors import ValidationException


@dataclass(frozen=True)
class ListDefaults:
    """An operation's sort when the request names none (the botocore model's documentation)."""

    sort_by: str = "CreationTime"
    sort_order: str = "Descending"


# ListModels, ListEndpointConfigs, ListEndpoints: "The default is Descending"; ListTrainingJobs:
# "The default is Ascending" (botocore/data/sagemaker/2017-07-24/service-2.json, SortOrder of each).
NEWEST_FIRST = ListDefaults()
TRAINING_JOBS = ListDefaults(sort_order="Ascending")


@dataclass(frozen=True)
class ListQuery:
    """A List* request's filters; ``None`` sort members take the operation's defaults."""

    name_contains: str | None = None
    status_equals: str | None = None
    sort_by: str | None = None  # "CreationTime", "Name" or "Status"
    sort_order: str | None = None  # "Ascending" or "Descending"
    max_results: int = 10
    next_token: str | None = None
    creation_time_after: float | None = None
    creation_time_before: float | None = None
    last_modified_time_after: float | None = None
    last_modified_time_before: float | None = None

    @classmethod
    def from_request(cls, params: dict[str, Any]) -> ListQuery:
        """The query of a List* request's members (timestamps as JSON numbers or ISO 8601 text)."""
        return cls(
            name_contains=params.get("NameContains"),
            status_equals=params.get("StatusEquals"),
            sort_by=params.get("SortBy"),
            sort_order=params.get("SortOrder"),
            max_results=int(params.get("MaxResults") or 10),
            next_token=params.get("NextToken"),
            creation_time_after=_epoch(params.get("CreationTimeAfter")),
            creation_time_before=_epoch(params.get("CreationTimeBefore")),
            last_modified_time_after=_epoch(params.get("LastModifiedTimeAfter")),
            last_modified_time_before=_epoch(params.get("LastModifiedTimeBefore")),
        )


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return parse_timestamp(value).timestamp()
    except (ValueError, TypeError) as exc:
        raise ValidationException(f"Invalid timestamp: {value!r}") from exc


def _within(value: float | None, after: float | None, before: float | None) -> bool:
    """``after`` counts from the time itself ("greater than or equal", the model's documentation of
    ListModels and ListEndpoints); ``before`` is strict."""
    if after is None and before is None:
        return True
    if value is None:
        return False
    return (after is None or value >= after) and (before is None or value < before)


def page(resources: list, query: ListQuery, defaults: ListDefaults = NEWEST_FIRST) -> tuple[list, str | None]:
    """One page of ``resources`` (objects with ``name``, ``creation_time``, maybe ``status`` and
    ``last_modified_time``) and the token of the next one."""
    if query.name_contains:
        needle = query.name_contains.lower()
        resources = [r for r in resources if needle in r.name.lower()]
    if query.status_equals:
        resources = [r for r in resources if getattr(r, "status", None) == query.status_equals]
    resources = [
        r
        for r in resources
        if _within(r.creation_time, query.creation_time_after, query.creation_time_before)
        and _within(getattr(r, "last_modified_time", None), query.last_modified_time_after, query.last_modified_time_before)
    ]
    sort_by = query.sort_by or defaults.sort_by
    if sort_by == "Name":
        resources = sorted(resources, key=lambda r: r.name)
    elif sort_by == "Status":
        resources = sorted(resources, key=lambda r: (getattr(r, "status", ""), r.creation_time, r.name))
    else:
        resources = sorted(resources, key=lambda r: (r.creation_time, r.name))
    if (query.sort_order or defaults.sort_order) == "Descending":
        resources.reverse()
    try:
        start = int(query.next_token or 0)
    except ValueError as exc:
        raise ValidationException("Invalid pagination token.") from exc
    if start < 0 or query.max_results < 1:
        raise ValidationException("Invalid pagination token or MaxResults.")
    end = start + query.max_results
    return resources[start:end], (str(end) if end < len(resources) else None)
