"""Errors raised by the validators compiled from our JSON Schemas (chalicelib/generated/).

The generated code was written for fastjsonschema's exception classes; these are compatible
stand-ins, so the Lambda needs neither fastjsonschema nor jsonschema at run time (each costs
50-140 ms of cold start; the compiled validators import in about a millisecond).
"""
from __future__ import annotations

import re
from typing import Any

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
