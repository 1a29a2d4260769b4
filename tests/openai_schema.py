"""Validate gateway bodies against OpenAI's own schemas (tests/spec/openai-subset.json)."""
from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource

SPEC = Path(__file__).parent / "spec" / "openai-subset.json"


def _nullable_as_null(node: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` means "or null"; JSON Schema ignores it, so rewrite it."""
    if isinstance(node, dict):
        node = {k: _nullable_as_null(v) for k, v in node.items()}
        if node.pop("nullable", False):
            return {"anyOf": [node, {"type": "null"}]}
        return node
    if isinstance(node, list):
        return [_nullable_as_null(v) for v in node]
    return node


@lru_cache(maxsize=1)
def _registry() -> Registry:
    spec = _nullable_as_null(copy.deepcopy(json.loads(SPEC.read_text())))
    return Registry().with_resource("spec", Resource.opaque(spec))


def validate(body: Any, schema_name: str) -> None:
    schema = {"$ref": f"spec#/components/schemas/{schema_name}"}
    jsonschema.Draft202012Validator(schema, registry=_registry()).validate(body)
