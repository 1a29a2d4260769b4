"""The catalog's rules across fields, which its JSON Schema cannot express; each names the field.

Checked when a catalog file loads (every model, every app) and when the admin API writes one app.
"""
from __future__ import annotations

import re
from datetime import date
from typing import TYPE_CHECKING, Any, Mapping

from chalicelib.errors import ConfigError

if TYPE_CHECKING:
    from chalicelib.catalog import App, Model

_SAGEMAKER_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")  # CreateEndpoint's EndpointName
# Which providers serve which kind of model.
_CHAT_PROVIDERS = frozenset({"local-echo", "bedrock", "openai", "sagemaker"})
_EMBEDDING_PROVIDERS = frozenset({"local-embed", "bedrock", "openai", "sagemaker"})


def check_model(model: Model, models: Mapping[str, Model], raw: dict[str, Any], where: str) -> None:
    """Rules across fields, which the JSON Schema does not express; each names the field."""
    if model.kind == "chat":
        if "max_output_tokens" not in raw:
            raise ConfigError(f"{where}.max_output_tokens: required for chat models")
        for at, price in [("price", raw["price"])] + [
                (f"deployments[{i}].price", d["price"]) for i, d in enumerate(raw["deployments"]) if "price" in d]:
            if "output_per_1k" not in price:
                raise ConfigError(f"{where}.{at}.output_per_1k: required for chat models")
    serves = _CHAT_PROVIDERS if model.kind == "chat" else _EMBEDDING_PROVIDERS
    for i, d in enumerate(model.deployments):
        at = f"{where}.deployments[{i}]"
        if d.provider not in serves:
            raise ConfigError(f"{at}.provider: {d.provider} does not serve {model.kind} models")
        if (d.provider == "openai") != (d.base_url is not None):
            raise ConfigError(f"{at}.base_url: required for provider openai, and only for it")
        if d.provider != "openai" and (d.api_key_parameter or d.api_key_env):
            raise ConfigError(f"{at}: api_key_parameter and api_key_env are for provider openai")
        if d.api_key_parameter and d.api_key_env:
            raise ConfigError(f"{at}: give api_key_parameter or api_key_env, not both")
        if d.provider == "sagemaker" and not _SAGEMAKER_NAME.fullmatch(d.model_id):
            raise ConfigError(f"{at}.model_id: a SageMaker endpoint name (letters, digits, hyphens; 63 at most)")
        if d.inference_component and d.provider != "sagemaker":
            raise ConfigError(f"{at}.inference_component: only for provider sagemaker")
        if d.prompt_caching and d.provider != "bedrock":
            raise ConfigError(f"{at}.prompt_caching: only for provider bedrock")
    names = [d.name for d in model.deployments]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}.deployments: names must be unique within a route")
    if model.dimensions is not None and model.kind != "embedding":
        raise ConfigError(f"{where}.dimensions: only for embedding models")
    life = model.lifecycle
    if life is not None and life.status != "active":
        if not (life.deprecated and life.sunset):
            raise ConfigError(f"{where}.lifecycle: deprecated and sunset are required unless active")
        for field_name in ("deprecated", "sunset"):
            try:
                date.fromisoformat(getattr(life, field_name))
            except ValueError:
                raise ConfigError(f"{where}.lifecycle.{field_name}: not a calendar date") from None
        if life.sunset < life.deprecated:  # ISO dates sort as strings
            raise ConfigError(f"{where}.lifecycle.sunset: must not come before deprecated")
    if life is not None and life.successor is not None:
        successor = models.get(life.successor)
        if successor is None or successor.id == model.id or successor.kind != model.kind:
            raise ConfigError(f"{where}.lifecycle.successor: must be another {model.kind} model of the catalog")



def app_rule_broken(app: App, models: Mapping[str, Model]) -> tuple[str, str] | None:
    """The catalog's rules across an app's fields, which the JSON Schema does not express:
    (dotted field, rule) of the first one broken."""
    if app.external_id is not None and not app.external_id.endswith(f":{app.id}"):
        # The operations role trusts ExternalId "<prefix>:${aws:RequestTag/app}" (infra/README.md).
        return ("external_id", f"must be '<prefix>:{app.id}' (e.g. 'execution-garden:{app.id}'), "
                               "which the operations role's trust checks")
    capped = sorted(set(app.quotas.model_tokens_per_day) - app.allowed_models)
    if capped:
        return "quotas.models", f"{capped[0]!r} is not one of the app's allowed_models"
    unknown = sorted(app.allowed_models - models.keys())
    if unknown:
        return "allowed_models", f"unknown model {unknown[0]!r}"
    return None
