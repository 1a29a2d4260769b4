"""Errors raised by the validators compiled from our JSON Schemas (chalicelib/generated/).

The generated code was written for fastjsonschema's exception classes; these are compatible
stand-ins, so the Lambda needs neither fastjsonschema nor jsonschema at run time (each costs
50-140 ms of cold start; the compiled validators import in about a millisecond).
"""
from __future__ import annotations

import re
from typing import Any, Mapping

_SPLIT = re.compile(r"[.\[\]]+")


class JsonSchemaValueException(ValueError):
    def __init__(self, message: str, value: Any = None, name: str | None = None,
                 definition: Any = None, rule: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.value = value  # the offending value: may be customer text, never log or echo it
        self.name = name or "data"
        self.definition = definition
        self.rule = rule

    @property
    def path(self) -> list[str | int]:
        """Path below the document root, e.g. ['messages', 0, 'role']."""
        parts = [p for p in _SPLIT.split(self.name) if p][1:]  # drop the leading "data"
        return [int(p) if p.isdigit() else p for p in parts]

    @property
    def rule_definition(self) -> Any:
        return self.definition.get(self.rule) if self.rule and isinstance(self.definition, dict) else None


class JsonSchemaValuesException(ValueError):
    """Only raised when fast-fail is off, which the generator never asks for."""


def dotted(path: list[str | int]) -> str:
    """['messages', 0, 'role'] -> 'messages[0].role'."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def coerce_integers(schema: Mapping[str, Any], data: Any, root: Mapping[str, Any] | None = None) -> Any:
    """`data` (already valid against `schema`) with integral floats made ints where the schema
    types a value integer: JSON has one number type, so `1.0` and `1e2` pass an integer rule, but
    botocore and arithmetic downstream want ints. Mutates containers in place; returns the value."""
    root = root or schema
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for key in ref[2:].split("/"):
            target = target[key]
        return coerce_integers(target, data, root)
    types = schema.get("type")
    if isinstance(data, float) and (types == "integer" or (isinstance(types, list) and "integer" in types)):
        return int(data) if data.is_integer() else data
    for branch in list(schema.get("anyOf") or ()) + list(schema.get("oneOf") or ()):
        data = coerce_integers(branch, data, root)
    if isinstance(data, dict):
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, value in data.items():
            sub = properties.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                data[key] = coerce_integers(sub, value, root)
    elif isinstance(data, list) and isinstance(schema.get("items"), dict):
        for i, value in enumerate(data):
            data[i] = coerce_integers(schema["items"], value, root)
    return data


# What a 400 says for each JSON Schema rule a request broke; none of them quotes the offending value.
RULE_MESSAGES = {
    "type": "has the wrong type",
    "required": "is required",
    "enum": "is not one of the accepted values",
    "const": "is not supported",
    "minimum": "is below the minimum",
    "maximum": "is above the maximum",
    "minItems": "must not be empty",
    "maxItems": "has too many items",
    "minLength": "must not be empty",
    "maxLength": "is too long",
    "maxProperties": "has too many keys",
    "propertyNames": "has a key that is too long",
    "pattern": "has an invalid format",
    "anyOf": "is not one of the accepted values or shapes",
}


def violation(error: JsonSchemaValueException) -> tuple[str, str]:
    """(dotted path of the offending field, what is wrong with it) for a caller's 400: the first
    missing property for `required`, never the value itself."""
    path = error.path
    if error.rule == "required":
        # Name the first required property that is missing, not the object that lacks it.
        path = path + [next(p for p in error.rule_definition if p not in error.value)]
    return dotted(path) or "(body)", RULE_MESSAGES.get(error.rule or "", "is invalid")
