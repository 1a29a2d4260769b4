"""JSON Schema of the catalog: apps, models (each with its route of deployments) and prices."""
from __future__ import annotations

from typing import Any

_ACTION = {"enum": ["ALLOW", "MASK", "REDACT", "BLOCK"]}
_DIRECTION_POLICY = {
    "type": "object",
    "description": "Action per Comprehend entity type; `default` covers the types not named.",
    "properties": {"default": _ACTION},
    "additionalProperties": _ACTION,
    "propertyNames": {"pattern": "^(default|[A-Z][A-Z0-9_]*)$"},
}
_IDENT = {"type": "string", "pattern": "^[a-z0-9][a-z0-9._:-]{0,63}$"}
# App ids travel into STS unchanged (SourceIdentity, RoleSessionName "garden-<id>", the `app` session
# tag, ExternalId "<prefix>:<id>"), where the operations role's trust policy compares them: no ":"
# and 2-57 characters, so no id needs rewriting and none can pass for another.
_COUNT = {"type": "integer", "minimum": 1}
_USD = {"type": "number", "exclusiveMinimum": 0}
_DATE = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
_APP_ID = {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{1,56}$"}

CATALOG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["version", "models", "apps"],
    "additionalProperties": False,
    "properties": {
        "version": {"const": 1},
        "models": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": _IDENT,
            "additionalProperties": {"$ref": "#/$defs/model"},
        },
        "apps": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/app"}},
        "business_units": {
            "type": "object",
            "description": "Budgets per business unit; a business unit without an entry has none.",
            "propertyNames": _IDENT,
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"usd_per_month": _USD, "tokens_per_month": _COUNT},
            },
        },
    },
    "$defs": {
        "price": {
            "type": "object",
            "description": "USD per 1,000 tokens.",
            "required": ["input_per_1k"],
            "additionalProperties": False,
            "properties": {
                "input_per_1k": {"type": "number", "minimum": 0},
                "output_per_1k": {"type": "number", "minimum": 0},
                "cache_read_per_1k": {"type": "number", "minimum": 0},
                "cache_write_per_1k": {"type": "number", "minimum": 0},
            },
        },
        "model": {
            "type": "object",
            # max_output_tokens and price.output_per_1k: required of chat models (catalog.py checks).
            "required": ["deployments", "price"],
            "additionalProperties": False,
            "properties": {
                "description": {"type": "string"},
                "owned_by": {"type": "string"},
                "max_output_tokens": {"type": "integer", "minimum": 1},
                "bytes_per_token": {
                    "type": "number", "minimum": 0.5, "maximum": 16,
                    "description": "Fewest UTF-8 bytes the model's tokenizer puts in one token: the "
                                   "quota estimate's floor. Default 1 (safe for byte-level tokenizers).",
                },
                "input_overhead_tokens": {
                    "type": "integer", "minimum": 0, "maximum": 100000,
                    "description": "Prompt tokens a provider adds when tools are offered "
                                   "(its tool-use system prompt). Default 600.",
                },
                "price": {"$ref": "#/$defs/price"},
                "kind": {"enum": ["chat", "embedding"], "description": "Default chat."},
                "dimensions": {
                    "type": "object",
                    "required": ["default"],
                    "additionalProperties": False,
                    "description": "Embedding models: output size, and the sizes a caller may ask for "
                                   "(`allowed` exactly, else any up to `max`). Absent: `dimensions` is refused.",
                    "properties": {
                        "default": {"type": "integer", "minimum": 1, "maximum": 16384},
                        "allowed": {"type": "array", "minItems": 1,
                                    "items": {"type": "integer", "minimum": 1, "maximum": 16384}},
                        "max": {"type": "integer", "minimum": 1, "maximum": 16384},
                    },
                },
                "lifecycle": {
                    "type": "object",
                    "required": ["status"],
                    "additionalProperties": False,
                    "properties": {
                        "status": {"enum": ["active", "legacy", "retired"]},
                        "deprecated": {"type": "string", "pattern": _DATE},
                        "sunset": {"type": "string", "pattern": _DATE},
                        "successor": {"type": "string", "minLength": 1},
                    },
                },
                "deployments": {
                    "type": "array",
                    "minItems": 1,
                    "description": "The route: tried in order.",
                    "items": {
                        "type": "object",
                        "required": ["provider", "model_id"],
                        "additionalProperties": False,
                        "properties": {
                            "provider": {"enum": ["local-echo", "local-embed", "bedrock", "openai", "sagemaker"]},
                            "model_id": {"type": "string", "minLength": 1, "maxLength": 2048},
                            "name": {"type": "string", "minLength": 1, "maxLength": 128},
                            "region": {"type": "string", "pattern": "^[a-z]{2}(-[a-z]+)+-\\d$"},
                            "prompt_caching": {"type": "boolean"},
                            "base_url": {"type": "string", "pattern": "^https?://[^\\s?#]+/v1$"},
                            "api_key_parameter": {"type": "string", "pattern": "^[A-Za-z0-9_.\\-/]{1,2048}$"},
                            "api_key_env": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]{0,127}$"},
                            "inference_component": {"type": "string", "pattern": "^[a-zA-Z0-9](-*[a-zA-Z0-9])*$",
                                                    "maxLength": 63},
                            "price": {"$ref": "#/$defs/price"},
                        },
                    },
                },
            },
        },
        "app": {
            "type": "object",
            "required": ["id", "business_unit", "principal_arns", "allowed_models", "quotas"],
            "additionalProperties": False,
            "properties": {
                "id": _APP_ID,
                "business_unit": _IDENT,
                "principal_arns": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "string", "pattern": r"^arn:aws[a-z-]*:(iam|sts)::\d{12}:.+"},
                },
                "allowed_models": {"type": "array", "items": {"type": "string"}},
                "external_id": {"type": "string", "pattern": "^[\\w+=,.@:/-]{2,1224}$"},
                "geography": {"enum": ["us", "eu", "apac", "ca", "jp", "au", "us-gov"]},
                "auto_upgrade": {"type": "boolean",
                                 "description": "A retired model is served by its successor, if allowed."},
                "system_prompt": {
                    "type": "object",
                    "required": ["text"],
                    "additionalProperties": False,
                    "description": "The app's own system prompt, sent first on every chat. "
                                   "caller_system: refuse (400 system_prompt_pinned) or append.",
                    "properties": {
                        "text": {"type": "string", "minLength": 1, "maxLength": 100000},
                        "caller_system": {"enum": ["refuse", "append"]},
                    },
                },
                "pii": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "input": _DIRECTION_POLICY,
                        "output": _DIRECTION_POLICY,
                        "allow_terms": {"type": "array", "items": {"type": "string"}},
                        "language": {"enum": ["en", "es"]},
                        "on_unavailable": {"enum": ["fail_closed", "fail_open"]},
                    },
                },
                "guardrail": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "denied_words": {"type": "array", "items": {"type": "string", "minLength": 1}},
                        "denied_topics": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["name", "phrases"],
                                "additionalProperties": False,
                                "properties": {
                                    "name": _IDENT,
                                    "phrases": {"type": "array", "minItems": 1,
                                                "items": {"type": "string", "minLength": 1}},
                                },
                            },
                        },
                        "prompt_attack": {"type": "boolean"},
                        "bedrock_guardrail_id": {"type": "string", "pattern": "^[a-z0-9]{1,12}$|^arn:aws"},
                        "bedrock_guardrail_version": {"type": "string", "pattern": "^(DRAFT|[1-9][0-9]{0,7})$"},
                        "on_unavailable": {"enum": ["fail_closed", "fail_open"]},
                    },
                },
                "quotas": {
                    "type": "object",
                    "additionalProperties": False,
                    "description": "Limits per app; any may be absent (no limit). Days and months are UTC; "
                                   "minutes are fixed windows.",
                    "properties": {
                        "tokens_per_day": _COUNT,
                        "tokens_per_month": _COUNT,
                        "requests_per_minute": _COUNT,
                        "tokens_per_minute": _COUNT,
                        "usd_per_month": _USD,
                        "models": {
                            "type": "object",
                            "description": "Per-model caps inside the app's quotas.",
                            "propertyNames": _IDENT,
                            "additionalProperties": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {"tokens_per_day": _COUNT},
                            },
                        },
                    },
                },
                "on_store_unavailable": {"enum": ["fail_closed", "fail_open"],
                                         "description": "When the quota store cannot answer. Default fail_closed (503)."},
            },
        },
    },
}
