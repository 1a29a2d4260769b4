"""The catalog: apps (tenants), models with their routes, and prices, from one JSON config.

Validated against its JSON Schema (catalog_schema.py) at start-up so that a broken config fails fast, naming the bad field,
instead of failing one request at a time in production.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from chalicelib.catalog_rules import app_rule_broken, check_model
from chalicelib.catalog_schema import CATALOG_SCHEMA
from chalicelib.errors import ConfigError
from chalicelib.generated.catalog_validator import validate as validate_catalog
from chalicelib.generated.catalog_validator import validate____defs_app as validate_app
from chalicelib.identity.principals import canonical_principal
from chalicelib.schema_validation import JsonSchemaValueException, coerce_integers, dotted


@dataclass(frozen=True, slots=True)
class Price:
    """USD per 1,000 tokens. Unpriced prompt-cache tokens cost what other input tokens cost."""

    input_per_1k: float
    output_per_1k: float
    cache_read_per_1k: float | None = None
    cache_write_per_1k: float | None = None


@dataclass(frozen=True, slots=True)
class Deployment:
    provider: str  # local-echo | local-embed | bedrock | openai | sagemaker
    # bedrock: foundation model id, inference profile id/ARN or provisioned ARN; openai: the
    # upstream's model name; sagemaker: the endpoint name
    model_id: str
    name: str
    region: str | None = None  # where it runs: bedrock/sagemaker call there; openai: residency only
    prompt_caching: bool = False  # bedrock: put cachePoint blocks after system and tools
    base_url: str | None = None  # openai: the upstream's base URL, ending in /v1
    api_key_parameter: str | None = None  # openai: SSM SecureString name holding the key
    api_key_env: str | None = None  # openai: environment variable holding the key (local use)
    inference_component: str | None = None  # sagemaker: the component on a shared endpoint
    price: Price | None = None  # overrides the model's price when this deployment serves


@dataclass(frozen=True, slots=True)
class Lifecycle:
    status: str  # active | legacy | retired
    deprecated: str | None = None  # YYYY-MM-DD
    sunset: str | None = None  # YYYY-MM-DD
    successor: str | None = None  # a catalog model id


@dataclass(frozen=True, slots=True)
class Dimensions:
    """An embedding model's output sizes: `default`, and which a caller may ask for."""

    default: int
    allowed: tuple[int, ...] = ()  # exactly these; empty: any size from 1 to `max`
    max: int | None = None

    def accepts(self, n: int) -> bool:
        return n in self.allowed if self.allowed else 1 <= n <= (self.max or self.default)


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
    kind: str = "chat"  # chat | embedding
    lifecycle: Lifecycle | None = None  # None: active
    dimensions: Dimensions | None = None  # embedding models that let callers choose a size

    @property
    def price(self) -> Price:
        return Price(self.input_per_1k, self.output_per_1k, self.cache_read_per_1k, self.cache_write_per_1k)

    def price_for(self, deployment: Deployment | None) -> Price:
        """What a call costs when `deployment` served it: its own price, else the model's."""
        return deployment.price if deployment is not None and deployment.price is not None else self.price

    @property
    def status(self) -> str:
        return self.lifecycle.status if self.lifecycle is not None else "active"


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
class Quotas:
    """An app's limits; None means no limit of that kind. Days and months are UTC calendar days
    and months; minutes are fixed one-minute windows."""

    tokens_per_day: int | None = None
    tokens_per_month: int | None = None
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    usd_per_month: float | None = None
    model_tokens_per_day: Mapping[str, int] = field(default_factory=dict)  # quotas.models.<id>.tokens_per_day


@dataclass(frozen=True, slots=True)
class BusinessUnit:
    id: str
    usd_per_month: float | None = None
    tokens_per_month: int | None = None


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
    quotas: Quotas
    external_id: str | None = None  # for AssumeRole into the operations account
    geography: str | None = None  # "eu", "us", "apac"...: never routed to another geography
    system_prompt: SystemPrompt | None = None  # pinned by the app's owners, sent first
    auto_upgrade: bool = False  # a retired model is served by its successor (if allowed) instead of 410
    store_fail_open: bool = False  # quota store unavailable: serve unmetered (counted) instead of 503
    disabled: bool = False  # deleted in the registry: its callers get 403 app_disabled


@dataclass(frozen=True)
class Catalog:
    models: Mapping[str, Model]
    apps: Mapping[str, App]
    _by_principal: Mapping[str, App] = field(repr=False, default_factory=dict)
    business_units: Mapping[str, BusinessUnit] = field(default_factory=dict)
    # Deployment names switched off in the registry (the kill switch): no route calls them.
    disabled_deployments: frozenset[str] = frozenset()

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
    for model in models.values():
        check_model(model, models, raw["models"][model.id], f"{source}: models.{model.id}")
    apps: dict[str, App] = {}
    by_principal: dict[str, App] = {}
    for index, a in enumerate(raw["apps"]):
        app = _app(a)
        where = f"{source}: apps[{index}]"
        if app.id in apps:
            raise ConfigError(f"{where}.id: duplicate app id {app.id!r}")
        wrong = app_rule_broken(app, models)
        if wrong:
            raise ConfigError(f"{where}.{wrong[0]}: {wrong[1]}")
        for arn in app.principal_arns:
            key = canonical_principal(arn)
            if key in by_principal:
                raise ConfigError(f"{where}.principal_arns: {arn} already belongs to another app")
            by_principal[key] = app
        apps[app.id] = app
    units = {bu: BusinessUnit(bu, float(b["usd_per_month"]) if "usd_per_month" in b else None,
                              b.get("tokens_per_month"))
             for bu, b in raw.get("business_units", {}).items()}
    return Catalog(MappingProxyType(models), MappingProxyType(apps), MappingProxyType(by_principal),
                   MappingProxyType(units))


class AppConfigError(ConfigError):
    """An app (the catalog's JSON) that breaks the catalog's rules; `param` is the dotted field
    (`quotas.tokens_per_day`). Messages name the rule, never a value."""

    def __init__(self, param: str, rule: str) -> None:
        super().__init__(f"{param}: {rule}")
        self.param = param
        self.rule = rule


def parse_app(raw: Any, models: Mapping[str, Model]) -> App:
    """One app as the catalog's `apps` has it, checked by the same schema and cross-field rules
    against `models` (a loaded catalog's): for apps that live in the registry. AppConfigError names
    the field. The registry's own `disabled` flag is read, not validated."""
    body = dict(raw) if isinstance(raw, Mapping) else raw
    disabled = bool(body.pop("disabled", False)) if isinstance(body, dict) else False
    try:
        validate_app(body)
    except JsonSchemaValueException as error:
        path = list(error.path)
        if error.rule == "required" and isinstance(error.value, dict):
            path += [next((p for p in error.rule_definition if p not in error.value), "")]
        raise AppConfigError(dotted(path) or "(root)", error.rule or "invalid") from None
    body = coerce_integers(CATALOG_SCHEMA["$defs"]["app"], copy.deepcopy(body), CATALOG_SCHEMA)
    app = _app(body)
    wrong = app_rule_broken(app, models)
    if wrong:
        raise AppConfigError(*wrong)
    return replace(app, disabled=True) if disabled else app


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
            base_url=d.get("base_url"),
            api_key_parameter=d.get("api_key_parameter"),
            api_key_env=d.get("api_key_env"),
            inference_component=d.get("inference_component"),
            price=_price(d["price"]) if "price" in d else None,
        )
        for d in m["deployments"]
    )
    price = _price(m["price"])
    life = m.get("lifecycle")
    dims = m.get("dimensions")
    return Model(
        id=model_id,
        owned_by=m.get("owned_by", "execution-garden"),
        max_output_tokens=m.get("max_output_tokens", 0),
        input_per_1k=price.input_per_1k,
        output_per_1k=price.output_per_1k,
        deployments=deployments,
        cache_read_per_1k=price.cache_read_per_1k,
        cache_write_per_1k=price.cache_write_per_1k,
        bytes_per_token=float(m.get("bytes_per_token", 1.0)),
        input_overhead_tokens=m.get("input_overhead_tokens", 600),
        kind=m.get("kind", "chat"),
        lifecycle=Lifecycle(life["status"], life.get("deprecated"), life.get("sunset"), life.get("successor"))
        if life else None,
        dimensions=Dimensions(dims["default"], tuple(dims.get("allowed", ())), dims.get("max")) if dims else None,
    )


def _price(p: dict[str, Any]) -> Price:
    return Price(float(p["input_per_1k"]), float(p.get("output_per_1k", 0.0)), p.get("cache_read_per_1k"),
                 p.get("cache_write_per_1k"))


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
        quotas=_quotas(a["quotas"]),
        external_id=a.get("external_id"),
        geography=a.get("geography"),
        system_prompt=(SystemPrompt(a["system_prompt"]["text"], a["system_prompt"].get("caller_system", "refuse"))
                       if "system_prompt" in a else None),
        auto_upgrade=a.get("auto_upgrade", False),
        store_fail_open=a.get("on_store_unavailable") == "fail_open",
    )


def _quotas(q: dict[str, Any]) -> Quotas:
    return Quotas(
        tokens_per_day=q.get("tokens_per_day"), tokens_per_month=q.get("tokens_per_month"),
        requests_per_minute=q.get("requests_per_minute"), tokens_per_minute=q.get("tokens_per_minute"),
        usd_per_month=float(q["usd_per_month"]) if "usd_per_month" in q else None,
        model_tokens_per_day=MappingProxyType({m: c["tokens_per_day"] for m, c in q.get("models", {}).items()
                                               if "tokens_per_day" in c}),
    )
