"""The service side of the SageMaker API's input checks, worded as AWS words them.

botocore's client validator checks types, required members and minimums, and only in the client:
a request sent with ``parameter_validation=False``, from another SDK or by hand reaches the service
unchecked, and enums, patterns, maximum lengths and ranges are never checked at all. AWS checks all
of them on the server and answers one ``ValidationException``::

    2 validation errors detected: Value 'ml.bogus.huge' at 'productionVariants.1.member.instanceType'
    failed to satisfy constraint: Member must satisfy enum value set: [...]; Value '1000' at
    'maxResults' failed to satisfy constraint: Member must have value less than or equal to 100

This module walks botocore's shapes (``botocore.model``), so every member of every operation is
checked without a line per member. The same walk checks responses against the output shapes (the
conformance test uses it), where wrong types are reported too.

The model's patterns are Java regular expressions, matched against the whole value (AWS refuses
``'ENTER MODEL NAME'`` for a pattern ``^[a-zA-Z0-9](-*[a-zA-Z0-9])*``, which matches its first word).
``JavaPattern`` translates what Python's ``re`` lacks (``\\p{L}``-style classes, UTF-16 surrogate
pairs, ``\\z``); a pattern that still does not compile is skipped and counted in ``SKIPPED_PATTERNS``.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from dataclasses import dataclass
from typing import Any

from botocore.model import Shape

_NUMBER_TYPES = ("integer", "long", "float", "double")

#: Patterns of the model that could not be made into a Python regex (pattern -> reason).
SKIPPED_PATTERNS: dict[str, str] = {}


@dataclass(frozen=True)
class Violation:
    """One failed constraint: where, the value as AWS prints it (``None``: null), and the constraint."""

    path: str
    value: str | None
    constraint: str
    sensitive: bool = False

    def __str__(self) -> str:
        if self.value is None:
            shown = "Value null"
        elif self.sensitive:
            shown = "Value"  # AWS does not echo a sensitive member's value
        else:
            shown = f"Value '{self.value}'"
        return f"{shown} at '{self.path}' failed to satisfy constraint: {self.constraint}"


def validation_message(violations: list[Violation]) -> str:
    """AWS's message: ``N validation error(s) detected: <one>; <two>``."""
    count = len(violations)
    noun = "error" if count == 1 else "errors"
    return f"{count} validation {noun} detected: " + "; ".join(str(v) for v in violations)


def request_violations(shape: Shape | None, params: Any) -> list[Violation]:
    """Every constraint of ``shape`` that ``params`` breaks (members of a wrong type are left to
    botocore's validator, which runs first)."""
    found: list[Violation] = []
    if shape is not None:
        _walk(shape, params, "", found, output=False)
    return found


def output_problems(shape: Shape | None, value: Any) -> list[Violation]:
    """What is wrong with a response body (as JSON decoded it) for its output shape: missing
    required members, wrong types, and every constraint."""
    found: list[Violation] = []
    if shape is not None:
        _walk(shape, value, "", found, output=True)
    return found


# --- the walk ---------------------------------------------------------------------------------------


def _member_path(parent: str, name: str) -> str:
    """AWS's path: the member names with a lower-case first letter, joined by dots."""
    name = name[:1].lower() + name[1:]
    return f"{parent}.{name}" if parent else name


def _walk(shape: Shape, value: Any, path: str, found: list[Violation], output: bool) -> None:
    if not _type_ok(shape, value):
        if output:
            found.append(Violation(path, render(value), f"Member must be of type {shape.type_name}"))
        return
    kind = shape.type_name
    if kind == "structure":
        for name in shape.required_members:
            if value.get(name) is None:
                found.append(Violation(_member_path(path, name), None, "Member must not be null"))
        for name, item in value.items():
            member = shape.members.get(name)
            if member is None:
                if output:
                    found.append(Violation(_member_path(path, name), render(item), "Member is not in the model"))
                continue
            if item is not None:
                _walk(member, item, _member_path(path, name), found, output)
        return
    own = constraints_failed(shape, value)
    if kind == "list":
        member = shape.member
        if member.type_name in ("structure", "list", "map"):
            for index, item in enumerate(value, start=1):
                if item is not None:
                    _walk(member, item, f"{path}.{index}.member", found, output)
        else:
            own += _nested("Member must satisfy constraint", member, value, output)
    elif kind == "map":
        own += _nested("Map keys must satisfy constraint", shape.key, list(value), output)
        if shape.value.type_name in ("structure", "list", "map"):
            for key, item in value.items():
                if item is not None:
                    _walk(shape.value, item, f"{path}.{key}", found, output)
        else:
            own += _nested("Map value must satisfy constraint", shape.value, list(value.values()), output)
    sensitive = bool(shape.metadata.get("sensitive"))
    found.extend(Violation(path, render(value, shape), constraint, sensitive) for constraint in own)


def _nested(prefix: str, shape: Shape, items: list[Any], output: bool) -> list[str]:
    """A list's or map's scalar members: their failed constraints, once each, as AWS groups them."""
    failed: list[str] = []
    for item in items:
        if not _type_ok(shape, item):
            if output:
                failed.append(f"Member must be of type {shape.type_name}")
            continue
        failed += [c for c in constraints_failed(shape, item) if c not in failed]
    return [f"{prefix}: [{', '.join(failed)}]"] if failed else []


def constraints_failed(shape: Shape, value: Any) -> list[str]:
    """The constraints (in AWS's words) that one value of ``shape`` breaks, in AWS's order."""
    meta = shape.metadata
    kind = shape.type_name
    failed: list[str] = []
    if kind in ("string", "list", "map", "blob"):
        size = len(value)
        if "min" in meta and size < meta["min"]:
            failed.append(f"Member must have length greater than or equal to {meta['min']}")
        if "max" in meta and size > meta["max"]:
            failed.append(f"Member must have length less than or equal to {meta['max']}")
    elif kind in _NUMBER_TYPES:
        if "min" in meta and value < meta["min"]:
            failed.append(f"Member must have value greater than or equal to {meta['min']}")
        if "max" in meta and value > meta["max"]:
            failed.append(f"Member must have value less than or equal to {meta['max']}")
    if kind == "string":
        enum = getattr(shape, "enum", None) or meta.get("enum")
        if enum and value not in enum:
            failed.append(f"Member must satisfy enum value set: [{', '.join(enum)}]")
        pattern = meta.get("pattern")
        if pattern is not None and not JavaPattern.matches(pattern, value):
            failed.append(f"Member must satisfy regular expression pattern: {pattern}")
    return failed


def _type_ok(shape: Shape, value: Any) -> bool:
    """The JSON 1.1 wire types: timestamps are epoch numbers, blobs base64 strings."""
    kind = shape.type_name
    if kind == "structure":
        return isinstance(value, dict)
    if kind == "list":
        return isinstance(value, list)
    if kind == "map":
        return isinstance(value, dict)
    if kind in ("string", "blob"):
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind in ("integer", "long"):
        return isinstance(value, int) and not isinstance(value, bool)
    if kind in ("float", "double", "timestamp"):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return True


def render(value: Any, shape: Shape | None = None) -> str:
    """A value as AWS (Java's ``toString``) prints it in a message: a float member's ``-1`` is ``-1.0``."""
    if shape is not None and shape.type_name in ("float", "double") and isinstance(value, int):
        value = float(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return f"{value:.1f}"
    if isinstance(value, list):
        return "[" + ", ".join(render(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={render(v)}" for k, v in value.items()) + "}"
    return str(value)


# --- Java patterns -------------------------------------------------------------------------------------

_POSIX = {
    "Alnum": "a-zA-Z0-9",
    "Alpha": "a-zA-Z",
    "Digit": "0-9",
    "ASCII": "\\x00-\\x7f",
    "Print": "\\x20-\\x7e",
    "Graph": "\\x21-\\x7e",
    "Punct": "!-/:-@\\[-`{-~",
    "Upper": "A-Z",
    "Lower": "a-z",
    "Space": " \\t\\n\\x0b\\f\\r",
}
_PROPERTY = re.compile(r"\\p\{(\w+)\}")
_REPEATED_ANCHOR = re.compile(r"(?<!\\)\$\{\d+(,\d*)?\}")  # Java takes `${1,128}` as `$`
_SURROGATES = re.compile(r"\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})", re.IGNORECASE)


@functools.cache
def _categories() -> dict[str, str]:
    """Character-class bodies for the Unicode general categories (``L``, ``Nd``, ...): Python's ``re``
    has no ``\\p{..}``. One pass over every code point (0.3 s), on the first pattern that needs it."""
    ranges: dict[str, list[list[int]]] = {}
    for code in range(sys.maxunicode + 1):
        category = unicodedata.category(chr(code))
        for name in (category[0], category):
            spans = ranges.setdefault(name, [])
            if spans and spans[-1][1] == code - 1:
                spans[-1][1] = code
            else:
                spans.append([code, code])
    return {
        name: "".join(f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in spans)
        for name, spans in ranges.items()
    }


def _class_body(name: str) -> str:
    if name in _POSIX:
        return _POSIX[name]
    if name in _categories():
        return _categories()[name]
    raise re.error(f"unsupported class \\p{{{name}}}")


def translate(pattern: str) -> str:
    """A Java regex as a Python one."""
    pattern = _REPEATED_ANCHOR.sub("$", pattern)
    pattern = _SURROGATES.sub(
        lambda m: f"\\U{0x10000 + ((int(m[1], 16) - 0xD800) << 10) + (int(m[2], 16) - 0xDC00):08x}", pattern
    )
    out: list[str] = []
    in_class = False
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            match = _PROPERTY.match(pattern, index)
            if match:
                body = _class_body(match[1])
                out.append(body if in_class else f"[{body}]")
                index = match.end()
                continue
            escape = pattern[index : index + 2]
            out.append("\\Z" if escape == "\\z" else escape)
            index += 2
            continue
        if char == "[" and not in_class:
            in_class = True
        elif char == "]" and in_class and out and out[-1] != "[":
            in_class = False
        out.append(char)
        index += 1
    return "".join(out)


class JavaPattern:
    """Compiled model patterns, cached; whole-value matches as Java's ``Matcher.matches``."""

    _compiled: dict[str, re.Pattern[str] | None] = {}

    @classmethod
    def compile(cls, pattern: str) -> re.Pattern[str] | None:
        if pattern not in cls._compiled:
            try:
                cls._compiled[pattern] = re.compile(translate(pattern))
            except re.error as exc:
                SKIPPED_PATTERNS[pattern] = str(exc)
                cls._compiled[pattern] = None
        return cls._compiled[pattern]

    @classmethod
    def matches(cls, pattern: str, value: str) -> bool:
        compiled = cls.compile(pattern)
        return compiled is None or compiled.fullmatch(value) is not None
