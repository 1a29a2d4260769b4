"""The catalog: apps (tenants), models with their routes, and prices, from one JSON config.

Validated against its JSON Schema (catalog_schema.py) at start-up so that a broken config fails fast, naming the bad field,
instead of failing one request at a time in production.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from chalicelib.catalog_schema import CATALOG_SCHEMA
from chalicelib.errors import ConfigError
from chalicelib.generated.catalog_validator import validate as validate_catalog
from chalicelib.identity.principals import canonical_principal
from chalicelib.schema_validation import JsonSchemaValueException, coerce_integers, dotted


@dataclass(frozen=True, slots=True)
class Deployment:
    provider: str  # local-echo | bedrock
    model_id: str  # Bedrock: foundation model id, inference profile id/ARN or provisioned ARN
    name: str
    region: str | None = None  # Bedrock: the region to call; None means the gateway's own
    prompt_caching: bool = False  # Bedrock: put cachePoint blocks after system and tools


@dataclass(frozen=True, slots=True)
class Model:
    id: str
    owned_by: str
    max_output_tokens: int
    input_per_1k: float
    output_per_1k: float
    deployments: tuple[Deployment, ...]
    # Prompt-cache prices (Bedrock bills reads below and writes above the input price);
    # unset, cached tokens cost what other input tokens cost.
    cache_read_per_1k: float | None = None
    cache_write_per_1k: float | None = None
    # Quota estimate (no tokenizer runs offline for most models): tokens <= bytes / bytes_per_token,
    # plus input_overhead_tokens when tools are offered. See tokens.py.
    bytes_per_token: float = 1.0
    input_overhead_tokens: int = 600


@dataclass(frozen=True, slots=True)
class PiiPolicy:
    input: Mapping[str, str]
    output: Mapping[str, str]
    allow_terms: tuple[str, ...] = ()
    fail_open: bool = False
    language: str = "en"  # what Comprehend is told the text is in: en or es

    def action(self, direction: str, entity_type: str) -> str:
        rules = self.input if direction == "input" else self.output
        return rules.get(entity_type, rules.get("default", "ALLOW"))


@dataclass(frozen=True, slots=True)
class DeniedTopic:
    name: str  # reported as TOPIC:<name>
    phrases: tuple[str, ...]  # local rules: any of these phrases means the topic


@dataclass(frozen=True, slots=True)
class GuardrailPolicy:
    denied_words: tuple[str, ...] = ()
    denied_topics: tuple[DeniedTopic, ...] = ()
    prompt_attack: bool = True  # local rules: the seed list of injection patterns
    bedrock_id: str | None = None  # Bedrock ApplyGuardrail: guardrail identifier and version
    bedrock_version: str = "DRAFT"
    fail_open: bool = False


@dataclass(frozen=True, slots=True)
class SystemPrompt:
    text: str
    caller_system: str = "refuse"  # refuse: a caller's system/developer message is a 400; append


@dataclass(frozen=True, slots=True)
class App:
    id: str
    business_unit: str
    principal_arns: tuple[str, ...]
    allowed_models: frozenset[str]
    pii: PiiPolicy
    guardrail: GuardrailPolicy
    tokens_per_day: int
    external_id: str | None = None  # for AssumeRole into the operations account
    geography: str | None = None  # "eu", "us", "apac"...: never routed to another geography
    system_prompt: SystemPrompt | None = None  # pinned by the app's owners, sent first


@dataclass(frozen=True)
class Catalog:
    models: Mapping[str, Model]
    apps: Mapping[str, App]
    _by_principal: Mapping[str, App] = field(repr=False, default_factory=dict)

    def app_for_principal(self, principal_arn: str) -> App | None:
        return self._by_principal.get(canonical_principal(principal_arn))

    def models_for(self, app: App) -> list[Model]:
        return [m for m_id, m in self.models.items() if m_id in app.allowed_models]


def load_catalog(path: Path) -> Catalog:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"catalog {path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"catalog {path}: invalid JSON at line {exc.lineno}") from None
    return parse_catalog(raw, source=str(path))


def parse_catalog(raw: Any, source: str = "catalog") -> Catalog:
    _validate(raw, source)
    raw = coerce_integers(CATALOG_SCHEMA, raw)  # 4096.0 is an integer to the schema: make it one
    models = {mid: _model(mid, m) for mid, m in raw["models"].items()}
    apps: dict[str, App] = {}
    by_principal: dict[str, App] = {}
    for index, a in enumerate(raw["apps"]):
        app = _app(a)
        where = f"{source}: apps[{index}]"
        if app.id in apps:
            raise ConfigError(f"{where}.id: duplicate app id {app.id!r}")
        if app.external_id is not None and not app.external_id.endswith(f":{app.id}"):
            # The operations role trusts ExternalId "<prefix>:${aws:RequestTag/app}" (infra/README.md).
            raise ConfigError(f"{where}.external_id: must be '<prefix>:{app.id}' (e.g. "
                              f"'execution-garden:{app.id}'), which the operations role's trust checks")
        unknown = sorted(app.allowed_models - models.keys())
        if unknown:
            raise ConfigError(f"{where}.allowed_models: unknown model {unknown[0]!r}")
        for arn in app.principal_arns:
            key = canonical_principal(arn)
            if key in by_principal:
                raise ConfigError(f"{where}.principal_arns: {arn} already belongs to another app")
            by_principal[key] = app
        apps[app.id] = app
    return Catalog(MappingProxyType(models), MappingProxyType(apps), MappingProxyType(by_principal))


def _validate(raw: Any, source: str) -> None:
    try:
        validate_catalog(raw)
    except JsonSchemaValueException as error:
        # Configuration, not customer data: the validator's own message (with values) helps most.
        where = dotted(error.path) or "(root)"
        detail = error.message.replace(error.name, "", 1).strip()
        raise ConfigError(f"{source}: {where}: {detail}") from None


def _model(model_id: str, m: dict[str, Any]) -> Model:
    deployments = tuple(
        Deployment(
            provider=d["provider"],
            model_id=d["model_id"],
            name=d.get("name", f"{d['provider']}/{d['model_id']}"),
            region=d.get("region"),
            prompt_caching=d.get("prompt_caching", False),
        )
        for d in m["deployments"]
    )
    return Model(
        id=model_id,
        owned_by=m.get("owned_by", "execution-garden"),
        max_output_tokens=m["max_output_tokens"],
        input_per_1k=float(m["price"]["input_per_1k"]),
        output_per_1k=float(m["price"]["output_per_1k"]),
        deployments=deployments,
        cache_read_per_1k=m["price"].get("cache_read_per_1k"),
        cache_write_per_1k=m["price"].get("cache_write_per_1k"),
        bytes_per_token=float(m.get("bytes_per_token", 1.0)),
        input_overhead_tokens=m.get("input_overhead_tokens", 600),
    )


def _app(a: dict[str, Any]) -> App:
    pii = a.get("pii", {})
    guard = a.get("guardrail", {})
    return App(
        id=a["id"],
        business_unit=a["business_unit"],
        principal_arns=tuple(a["principal_arns"]),
        allowed_models=frozenset(a["allowed_models"]),
        pii=PiiPolicy(
            input=MappingProxyType(dict(pii.get("input", {}))),
            output=MappingProxyType(dict(pii.get("output", {}))),
            allow_terms=tuple(pii.get("allow_terms", ())),
            fail_open=pii.get("on_unavailable") == "fail_open",
            language=pii.get("language", "en"),
        ),
        guardrail=GuardrailPolicy(
            denied_words=tuple(guard.get("denied_words", ())),
            denied_topics=tuple(DeniedTopic(t["name"], tuple(t["phrases"]))
                                for t in guard.get("denied_topics", ())),
            prompt_attack=guard.get("prompt_attack", True),
            bedrock_id=guard.get("bedrock_guardrail_id"),
            bedrock_version=guard.get("bedrock_guardrail_version", "DRAFT"),
            fail_open=guard.get("on_unavailable") == "fail_open",
        ),
        tokens_per_day=a["quotas"]["tokens_per_day"],
        external_id=a.get("external_id"),
        geography=a.get("geography"),
        system_prompt=(SystemPrompt(a["system_prompt"]["text"], a["system_prompt"].get("caller_system", "refuse"))
                       if "system_prompt" in a else None),
    )
