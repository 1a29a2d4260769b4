"""What the admin API accepts: an app or a business unit's budget as the catalog has them, checked by
the catalog's own JSON Schema (the compiled validator) and its cross-field rules, and the usage
query. Every refusal is a 400 whose `param` is the dotted path of the field (`quotas.tokens_per_day`)
and whose message names the rule, never the value.
"""
from __future__ import annotations

import json
import re
from datetime import date
from typing import Any, Collection, Mapping, Sequence

from chalicelib.catalog_schema import CATALOG_SCHEMA
from chalicelib.errors import InvalidRequest
from chalicelib.generated.catalog_validator import validate as validate_catalog
from chalicelib.generated.catalog_validator import validate____defs_app as validate_app_schema
from chalicelib.identity.principals import canonical_principal
from chalicelib.schema_validation import JsonSchemaValueException, coerce_integers, dotted, violation
from chalicelib.usage import GROUP_KEYS, KINDS

_IDENT = re.compile(CATALOG_SCHEMA["properties"]["business_units"]["propertyNames"]["pattern"])
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
# Enough for a chargeback year and the 13 months the aggregates are kept, with room to spare.
MAX_USAGE_DAYS = 800


def json_body(body: bytes) -> Any:
    if not body:
        raise InvalidRequest("the request body must be a JSON object", code="invalid_json")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("the request body is not valid JSON", code="invalid_json") from None


def app_entry(path_id: str, raw: Any, models: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """The app to store for PUT /admin/v1/apps/{path_id}: the catalog's app JSON, validated.
    `where` prefixes every `param` (`apps[2].` for an app of an imported catalog)."""
    if not isinstance(raw, dict):
        raise InvalidRequest("the request body must be a JSON object (an app as in the catalog's apps)",
                             code="invalid_value")
    if "id" in raw and raw["id"] != path_id:
        raise InvalidRequest("id must equal the app id in the path", param="id", code="id_mismatch")
    app = {"id": path_id, **raw}
    try:
        validate_app_schema(app)
    except JsonSchemaValueException as error:
        _schema_error(error, [], where)
    app = coerce_integers(CATALOG_SCHEMA["$defs"]["app"], app, CATALOG_SCHEMA)
    # The catalog's rules across fields (catalog.py checks the same at load).
    unknown = sorted(set(app["allowed_models"]) - set(models))
    if unknown:
        _refuse(f"{where}allowed_models", "names a model the catalog does not have")
    capped = sorted(set(app["quotas"].get("models", {})) - set(app["allowed_models"]))
    if capped:
        _refuse(f"{where}quotas.models", "caps a model that is not one of the app's allowed_models")
    external_id = app.get("external_id")
    if external_id is not None and not external_id.endswith(f":{path_id}"):
        _refuse(f"{where}external_id", f"must be '<prefix>:{path_id}', which the operations role's trust checks")
    return app


def catalog_entries(raw: Any, models: Mapping[str, Any]) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The apps and business units of a catalog file to import (POST /admin/v1/catalog/import): the
    whole file checked by the catalog schema (`param`: `apps[1].quotas.tokens_per_day`), its apps by
    the rules across fields against the served catalog's models. Models and routes are the deployed
    catalog's: an import re-applies apps and budgets only."""
    if not isinstance(raw, dict):
        raise InvalidRequest("the request body must be a catalog JSON object", code="invalid_value")
    try:
        validate_catalog(raw)
    except JsonSchemaValueException as error:
        _schema_error(error, [], "", root=True)
    apps: list[dict[str, Any]] = []
    owners: dict[str, str] = {}
    for i, entry in enumerate(raw["apps"]):
        if any(a["id"] == entry["id"] for a in apps):
            _refuse(f"apps[{i}].id", "repeats another app's id")
        app = app_entry(entry["id"], entry, models, where=f"apps[{i}].")
        for arn in app["principal_arns"]:
            key = canonical_principal(arn)
            if owners.setdefault(key, app["id"]) != app["id"]:
                _refuse(f"apps[{i}].principal_arns", "names a principal another app of the file holds")
        apps.append(app)
    units = coerce_integers(CATALOG_SCHEMA, raw).get("business_units", {})
    return apps, {bu: dict(budget) for bu, budget in units.items()}


def business_unit_entry(business_unit: str, raw: Any) -> dict[str, Any]:
    """The budget to store for PUT /admin/v1/business-units/{bu}: as the catalog's `business_units`."""
    if not _IDENT.fullmatch(business_unit):
        _refuse("business_unit", "has an invalid format")
    if not isinstance(raw, dict):
        raise InvalidRequest("the request body must be a JSON object with usd_per_month and/or tokens_per_month",
                             code="invalid_value")
    budget = {k: v for k, v in raw.items() if k != "id"}
    if "id" in raw and raw["id"] != business_unit:
        raise InvalidRequest("id must equal the business unit in the path", param="id", code="id_mismatch")
    # The whole-catalog validator, on a catalog holding only this budget: the very same rules.
    probe = {"version": 1, "models": {"m": {"deployments": [{"provider": "local-echo", "model_id": "m"}],
                                            "price": {"input_per_1k": 0}}},
             "apps": [{"id": "probe", "business_unit": business_unit, "quotas": {}, "allowed_models": [],
                       "principal_arns": ["arn:aws:iam::000000000000:role/probe"]}],
             "business_units": {business_unit: budget}}
    try:
        validate_catalog(probe)
    except JsonSchemaValueException as error:
        _schema_error(error, ["business_units", business_unit])
    return dict(coerce_integers(CATALOG_SCHEMA, probe)["business_units"][business_unit])


def enabled_flag(raw: Any) -> bool:
    if not isinstance(raw, dict):
        raise InvalidRequest('the request body must be a JSON object: {"enabled": true|false}', code="invalid_value")
    if not isinstance(raw.get("enabled"), bool):
        _refuse("enabled", "is required and must be true or false")
    extra = sorted(set(raw) - {"enabled", "name"})
    if extra:
        _refuse(extra[0], "is not a known field")
    return raw["enabled"]


def month_value(raw: Any) -> str:
    if not isinstance(raw, dict):
        raise InvalidRequest('the request body must be a JSON object: {"month": "YYYY-MM"}', code="invalid_value")
    month = raw.get("month")
    if not isinstance(month, str) or not _MONTH.fullmatch(month):
        _refuse("month", "is required, as YYYY-MM")
    extra = sorted(set(raw) - {"month"})
    if extra:
        _refuse(extra[0], "is not a known field")
    return month


class UsageQuery:
    """`from`, `to` (inclusive UTC days), `group_by`, `format` of GET /admin/v1/usage; with
    `kinds=True`, also `kind` (GET /admin/v1/activity: rejected, error, pii, guardrail)."""

    def __init__(self, query: Mapping[str, Sequence[str]] | None, today: date, kinds: bool = False) -> None:
        query = dict(query or {})
        known = ("from", "to", "group_by", "format", "kind") if kinds else ("from", "to", "group_by", "format")
        for name in query:
            if name not in known:
                _refuse(name, f"is not a parameter of this route ({', '.join(known)})", "unknown_parameter")
        self.kinds = _choices(query, "kind", KINDS, "rejected, error, pii and guardrail") or KINDS
        to_day = _day(query, "to", today)
        from_day = _day(query, "from", to_day.replace(day=1))
        if from_day > to_day:
            _refuse("from", "must not come after to")
        if (to_day - from_day).days >= MAX_USAGE_DAYS:
            _refuse("from", f"spans more than {MAX_USAGE_DAYS} days: ask for a shorter range")
        group_by = _choices(query, "group_by", GROUP_KEYS, "app, business_unit, model, day and month")
        fmt = _single(query, "format") or "json"
        if fmt not in ("json", "csv"):
            _refuse("format", "is json or csv")
        self.from_day, self.to_day = from_day.isoformat(), to_day.isoformat()
        self.group_by = group_by
        self.format = fmt


def month_param(month: str, today: date) -> str:
    """A month in a path (GET /admin/v1/chargeback/{month}): YYYY-MM, not after today's month."""
    if not _MONTH.fullmatch(month):
        _refuse("month", "must be a UTC month, YYYY-MM")
    if month > today.isoformat()[:7]:
        _refuse("month", "is after the current month")
    return month


def _day(query: Mapping[str, Sequence[str]], name: str, default: date) -> date:
    value = _single(query, name)
    if value is None:
        return default
    try:
        if not _DAY.fullmatch(value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        _refuse(name, "must be a UTC date, YYYY-MM-DD")
    raise AssertionError  # unreachable: _refuse raises


def _choices(query: Mapping[str, Sequence[str]], name: str, allowed: Collection[str], told: str) -> tuple[str, ...]:
    """A comma-separated parameter, repeatable, each value one of `allowed`: in the order first
    given, without repeats."""
    chosen: list[str] = []
    for value in query.get(name, []):
        for item in (v.strip() for v in value.split(",")):
            if item not in allowed:
                _refuse(name, f"takes {told}, comma-separated")
            if item not in chosen:
                chosen.append(item)
    return tuple(chosen)


def _single(query: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = query.get(name)
    if not values:
        return None
    if len(values) > 1:
        _refuse(name, "is given more than once")
    return values[0]


def _schema_error(error: JsonSchemaValueException, prefix: list[Any], where: str = "", root: bool = False) -> None:
    path = error.path
    if path[: len(prefix)] != prefix:  # the probe around a budget: cannot fail outside it
        _refuse("(body)", "is invalid")
    rule = "must be above zero" if error.rule == "exclusiveMinimum" else violation(error)[1]
    value = error.value
    if error.rule == "required" and isinstance(value, dict):
        path = path + [next(p for p in error.rule_definition if p not in value)]
    elif error.rule == "additionalProperties" and isinstance(value, dict):
        known = set(_schema_at(error.path, root).get("properties", {}))
        extra = sorted(k for k in value if k not in known)
        if extra:
            path, rule = path + [extra[0]], "is not a known field"
    _refuse(where + dotted(path[len(prefix):]) if path[len(prefix):] else where.rstrip(".") or "(body)", rule)


def _schema_at(path: list[Any], root: bool = False) -> dict[str, Any]:
    """The catalog schema's node for an app-relative or catalog-relative path (to name unknown keys)."""
    node: Any = CATALOG_SCHEMA if root or path[:1] == ["business_units"] else CATALOG_SCHEMA["$defs"]["app"]
    for part in path:
        while isinstance(node, dict) and "$ref" in node:
            node = CATALOG_SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[-1]]
        if isinstance(part, int):
            node = node.get("items", {})
        else:
            props = node.get("properties", {})
            node = props[part] if part in props else node.get("additionalProperties", {})
        if not isinstance(node, dict):
            return {}
    return node


def _refuse(param: str, rule: str, code: str = "invalid_value") -> None:
    raise InvalidRequest(f"{param}: {rule}", param=param, code=code)
