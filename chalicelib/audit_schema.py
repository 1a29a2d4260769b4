"""JSON Schemas of the audit trail: a record (one per request, metadata only) and a checkpoint.

Both forbid extra fields: a record with a field the schema does not name is refused by
`garden-admin audit verify`, so nothing (a prompt, say) rides along unnoticed, and a field added to
RequestRecord without a line here fails the test that compares the two. Only numbers, ids,
categories, times and hashes: there is no field for text.

The validators in `chalicelib/generated/` are compiled from these by `scripts/generate_validators.py`
(`make validators`); verify imports them, so it needs no jsonschema either.
"""
from __future__ import annotations

from typing import Any

_ID = {"type": "string", "minLength": 1, "maxLength": 2048}
_OPT_ID = {"type": ["string", "null"], "maxLength": 2048}
_COUNT = {"type": "integer", "minimum": 0}
_HEX64 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}

AUDIT_RECORD_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Execution Garden audit record",
    "type": "object",
    "additionalProperties": False,
    "required": ["request_id", "timestamp", "route", "status", "chain_id", "seq", "prev_hash", "prev_request_id",
                 "body_hmac"],
    "properties": {
        "request_id": _ID,
        "timestamp": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}"},
        "route": _ID,
        "status": _COUNT,
        "error_code": _OPT_ID,
        "app_id": _OPT_ID,
        "business_unit": _OPT_ID,
        "principal": _OPT_ID,
        "model": _OPT_ID,
        "upgraded_from": _OPT_ID,
        "deployment": _OPT_ID,
        "attempts": _COUNT,
        "stream": {"type": "boolean"},
        "finish_reason": _OPT_ID,
        "reserved_tokens": _COUNT,
        "prompt_tokens": _COUNT,
        "cached_tokens": _COUNT,
        "completion_tokens": _COUNT,
        "cost_usd": {"type": "number", "minimum": 0},
        "pii": {"type": "object", "additionalProperties": _COUNT},
        "guardrail": {"type": "array", "items": {"type": "string", "maxLength": 256}},
        "quota_store": _OPT_ID,
        "latency_ms": {"type": "number", "minimum": 0},
        "controls": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 256}},
        "upstream_throttles": _COUNT,
        "fallbacks": _COUNT,
        "breaker_opens": _COUNT,
        "budget_pace": {"type": ["number", "null"]},
        # The chain (audit_chain.py): which chain, where in it, and the link to the record before.
        "chain_id": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}\.[0-9a-f]{16}\.\d+$"},
        "seq": {"type": "integer", "minimum": 1},
        "prev_hash": _HEX64,
        "prev_request_id": _OPT_ID,
        # HMAC-SHA256 of the request body under the data plane's secret: identical bodies correlate,
        # no body can be recovered or guessed from it without the secret.
        "body_hmac": {"type": ["string", "null"], "pattern": "^[0-9a-f]{64}$"},
    },
}

CHECKPOINT_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Execution Garden audit checkpoint",
    "type": "object",
    "additionalProperties": False,
    "required": ["chain_id", "seq", "hash", "request_id", "at", "closed", "alg", "key", "sig"],
    "properties": {
        "chain_id": AUDIT_RECORD_SCHEMA["properties"]["chain_id"],
        "seq": {"type": "integer", "minimum": 1},  # the last record it covers
        "hash": _HEX64,  # that record's hash
        "request_id": _ID,  # that record's request id, to name it when it is missing
        "at": {"type": "string"},  # when it was written (ISO 8601 UTC)
        "closed": {"type": "boolean"},  # the chain's last checkpoint: no record may follow
        "alg": {"enum": ["ECDSA_SHA_256", "HMAC_SHA_256"]},  # KMS Sign, or HMAC under the local key
        "key": _ID,  # the KMS key ARN, or "local:<first 16 hex of the key's SHA-256>"
        "sig": {"type": "string", "minLength": 1, "maxLength": 1024},  # base64
    },
}
