"""Caller-shaped JSON on its way to a provider SDK: plain dicts, bounded depth, or a 400.

The request parser already refuses NaN, Infinity and deep nesting in the body; tool schemas and
tool-call arguments are checked again here because providers re-serialise them (botocore's
document types, an upstream's JSON) and must never fail on them client-side.
"""
from __future__ import annotations

import json
from typing import Any, Mapping

from chalicelib.errors import InvalidRequest

MAX_JSON_DEPTH = 64


def tool_schema(schema: Mapping[str, Any], param: str) -> dict[str, Any]:
    """A tool's parameters as a plain JSON object (read-only mappings become dicts), or a 400."""
    try:
        plain = json.loads(json.dumps(schema, default=dict, allow_nan=False)) if schema else {}
    except (ValueError, TypeError, RecursionError):
        raise InvalidRequest("the function parameters are not a JSON Schema object", param=param) from None
    if not isinstance(plain, dict):
        raise InvalidRequest("the function parameters are not a JSON Schema object", param=param)
    check_depth(plain, param)
    return plain or {"type": "object", "properties": {}}


def check_depth(value: Any, param: str) -> None:
    level, depth = [value], 0
    while level:  # breadth first: no recursion on the caller's nesting
        depth += 1
        if depth > MAX_JSON_DEPTH:
            raise InvalidRequest(f"JSON nested deeper than {MAX_JSON_DEPTH} levels", param=param)
        level = [child for item in level if isinstance(item, (dict, list))
                 for child in (item.values() if isinstance(item, dict) else item)]
