"""JSON Schema of the embeddings request fields the gateway reads; others are ignored.

Token arrays (a list of integers, or of lists of integers) are OpenAI's too, but no provider the
gateway routes to takes tokens, and no screen can read them: embeddings_request.py refuses them
before this schema runs, naming `input`.

The validator in `chalicelib/generated/` is compiled from this schema by
`scripts/generate_validators.py` (`make validators`); a test fails if they drift apart.
"""
from __future__ import annotations

from typing import Any

# Limits (README "Embeddings"): OpenAI's 2,048 inputs a request; 50,000 characters an input (Titan
# Text Embeddings v2's own limit, the largest of the providers'); the body cap bounds the total.
MAX_INPUTS = 2048
MAX_INPUT_CHARS = 50_000

_TEXT = {"type": "string", "minLength": 1, "maxLength": MAX_INPUT_CHARS}
EMBEDDINGS_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["model", "input"],
    "properties": {
        "model": {"type": "string", "minLength": 1},
        # Array keywords apply only to arrays and string keywords only to strings.
        "input": {**_TEXT, "type": ["string", "array"], "minItems": 1, "maxItems": MAX_INPUTS, "items": _TEXT},
        "encoding_format": {"enum": ["float", "base64", None]},
        "dimensions": {"type": ["integer", "null"], "minimum": 1},
        "user": {"type": ["string", "null"], "maxLength": 256},
    },
}
