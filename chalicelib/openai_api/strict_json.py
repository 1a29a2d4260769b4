"""JSON as the gateway accepts it from callers: every way a body could crash code downstream is a
400 here, at the door, rather than a 500 (or a provider SDK's refusal) later.

- `NaN`, `Infinity` and numbers too large for a float are refused: Python's json accepts them,
  but no JSON peer does and arithmetic on them poisons quotas and costs.
- Nesting deeper than `MAX_DEPTH` is refused: deep documents exhaust the recursion limit of every
  recursive walker after the parser (serialisers, validators, SDKs).
- Bodies are UTF-8, as OpenAI's API takes them; a lone UTF-16 surrogate (`"\\ud800"`) is
  refused: it cannot be encoded as UTF-8, so the first hash or HTTP call that encodes it would fail.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

from chalicelib.errors import InvalidRequest

MAX_DEPTH = 64  # far above any real request (tool schemas nest a handful of levels)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def strict_json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or InvalidRequest (400, code invalid_json) naming the rule."""
    if not body:
        raise InvalidRequest("request body is empty: expected a JSON object", code="invalid_json")
    try:
        # Decoded here, strictly: json.loads(bytes) would also take UTF-16/32 with surrogatepass,
        # letting raw lone surrogates in without the escape the check below looks for.
        raw = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise _invalid(f"request body nests deeper than {MAX_DEPTH} levels") from None
    except _NonFinite:
        raise _invalid("request body holds NaN, Infinity or a number too large for a float") from None
    except (ValueError, UnicodeDecodeError):
        raise _invalid("request body is not valid JSON") from None
    if not isinstance(raw, dict):
        raise _invalid("request body must be a JSON object")
    deep = body.count(b"[") + body.count(b"{") > MAX_DEPTH
    surrogates = _SURROGATE_ESCAPE.search(body) is not None
    if deep or surrogates:  # rare: only then is the walk worth its cost
        _check_tree(raw, check_strings=surrogates)
    return raw


def check_embedded_json(text: str, param: str) -> None:
    """JSON carried inside a string (tool-call arguments): refuse what would crash a provider's
    parser (too deep, NaN, Infinity); leave text that is not JSON to the provider to judge."""
    if text.count("[") + text.count("{") <= MAX_DEPTH and "NaN" not in text and "Infinity" not in text:
        return  # cannot be too deep, nor hold a non-finite constant (1e400 is caught below)
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except (RecursionError, _NonFinite):
        raise InvalidRequest(f"{param}: nests deeper than {MAX_DEPTH} levels or holds NaN/Infinity",
                             param=param, code="invalid_value") from None
    except ValueError:
        return
    try:
        _check_tree(value, check_strings=False)
    except InvalidRequest:
        raise InvalidRequest(f"{param}: nests deeper than {MAX_DEPTH} levels", param=param,
                             code="invalid_value") from None


class _NonFinite(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NonFinite(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # "1e400" parses to inf
        raise _NonFinite(text)
    return value


def _check_tree(root: Any, check_strings: bool) -> None:
    """Iterative walk (no recursion to exhaust): depth, and lone surrogates in keys and strings."""
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            if depth > MAX_DEPTH:
                raise _invalid(f"request body nests deeper than {MAX_DEPTH} levels")
            for key, value in node.items():
                if check_strings and _SURROGATE.search(key):
                    raise _surrogate()
                stack.append((value, depth + 1))
        elif isinstance(node, list):
            if depth > MAX_DEPTH:
                raise _invalid(f"request body nests deeper than {MAX_DEPTH} levels")
            stack.extend((value, depth + 1) for value in node)
        elif check_strings and isinstance(node, str) and _SURROGATE.search(node):
            raise _surrogate()


def _surrogate() -> InvalidRequest:
    return _invalid("request body holds a lone UTF-16 surrogate (\\ud800-\\udfff): not valid Unicode text")


def _invalid(message: str) -> InvalidRequest:
    return InvalidRequest(message, code="invalid_json")
