"""Span attributes from the gateway's own metadata: the OpenTelemetry GenAI semantic conventions
(gen_ai.*, error.type) where they name a thing, `garden.*` for the rest.

Only ids, numbers, categories and names reach here: the request record (record.py, no text field),
deployments and usage counts. Nothing in this module is handed a prompt or a completion.
"""
from __future__ import annotations

from typing import Any

from chalicelib.record import RequestRecord

OPERATIONS = {"chat.completions": "chat", "embeddings": "embeddings"}
HTTP_ROUTES = {"chat.completions": ("POST", "/v1/chat/completions"), "embeddings": ("POST", "/v1/embeddings"),
               "models.list": ("GET", "/v1/models"), "models.retrieve": ("GET", "/v1/models/{model_id}")}
# gen_ai.provider.name: the conventions' well-known values where there is one (aws.bedrock, openai:
# the OpenAI-compatible tier speaks OpenAI's API), a dotted name of ours otherwise.
PROVIDER_NAMES = {"bedrock": "aws.bedrock", "openai": "openai", "sagemaker": "aws.sagemaker",
                  "local-echo": "garden.local", "local-embed": "garden.local"}


def server_span_name(route: str) -> str:
    method, path = HTTP_ROUTES.get(route, ("POST", route))
    return f"{method} {path}"


def request_start(route: str, request_id: str) -> dict[str, Any]:
    method, path = HTTP_ROUTES.get(route, ("POST", route))
    attributes: dict[str, Any] = {"http.request.method": method, "http.route": path,
                                  "garden.request_id": request_id}
    operation = OPERATIONS.get(route)
    if operation is not None:
        attributes["gen_ai.operation.name"] = operation
    return attributes


def request_end(record: RequestRecord) -> dict[str, Any]:
    """The root (SERVER) span's attributes: what dashboards group by, from the request's record."""
    attributes: dict[str, Any] = {"http.response.status_code": record.status, "garden.attempts": record.attempts}
    if record.model is not None:
        attributes["gen_ai.request.model"] = record.upgraded_from or record.model
        attributes["gen_ai.response.model"] = record.model
    if record.route in OPERATIONS:
        attributes["gen_ai.usage.input_tokens"] = record.prompt_tokens
        attributes["gen_ai.usage.output_tokens"] = record.completion_tokens
        attributes["garden.cost_usd"] = record.cost_usd
        attributes["garden.reserved_tokens"] = record.reserved_tokens
        attributes["garden.stream"] = record.stream
    if record.finish_reason:
        attributes["gen_ai.response.finish_reasons"] = [record.finish_reason]
    if record.cached_tokens:
        attributes["gen_ai.usage.cache_read.input_tokens"] = record.cached_tokens
    if record.error_code:
        attributes["error.type"] = record.error_code
    for key, value in (("garden.app_id", record.app_id), ("garden.business_unit", record.business_unit),
                       ("garden.deployment", record.deployment), ("garden.upgraded_from", record.upgraded_from),
                       ("garden.quota_store", record.quota_store)):
        if value is not None:
            attributes[key] = value
    attributes.update(pii_counts(record.pii))
    attributes.update(guardrail_verdict(record.guardrail))
    return attributes


def pii_counts(counts: dict[str, int]) -> dict[str, Any]:
    """`garden.pii.<type>.<action>` = count (types and actions are the detector's category names),
    and the total as `garden.pii.entities`."""
    attributes: dict[str, Any] = {f"garden.pii.{key.lower().replace(':', '.')}": n for key, n in counts.items()}
    attributes["garden.pii.entities"] = sum(counts.values())
    return attributes


def guardrail_verdict(entries: list[str]) -> dict[str, Any]:
    """The worst action taken (`pass` when none) and the "<SOURCE>:<ACTION>:<CATEGORY>" entries."""
    if not entries:
        return {"garden.guardrail.verdict": "pass"}
    actions = {entry.split(":")[1] for entry in entries if entry.count(":") >= 1}
    worst = next((a for a in ("BLOCKED", "UNAVAILABLE", "MASKED") if a in actions), sorted(actions)[0])
    return {"garden.guardrail.verdict": worst.lower(), "garden.guardrail.categories": list(entries)}


def attempt_start(operation: str, deployment: Any, model_id: str, attempt: int, max_tokens: int | None = None,
                  temperature: float | None = None, top_p: float | None = None,
                  dimensions: int | None = None) -> tuple[str, dict[str, Any]]:
    """A provider attempt's CLIENT span: its name (`chat <model>`, `embeddings <model>`, as the
    GenAI conventions name it) and starting attributes. The requested model is the provider's own
    id for the deployment; `garden.model` is the catalog's."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation, "gen_ai.provider.name": PROVIDER_NAMES.get(
            deployment.provider, f"garden.{deployment.provider}"),
        "gen_ai.request.model": deployment.model_id, "garden.model": model_id,
        "garden.deployment": deployment.name, "garden.attempt": attempt,
    }
    if getattr(deployment, "region", None):
        attributes["cloud.region"] = deployment.region
    base_url = getattr(deployment, "base_url", None)
    if base_url:
        from urllib.parse import urlsplit

        parts = urlsplit(base_url)
        attributes["server.address"] = parts.hostname or ""
        if parts.port:
            attributes["server.port"] = parts.port
    for key, value in (("gen_ai.request.max_tokens", max_tokens), ("gen_ai.request.temperature", temperature),
                       ("gen_ai.request.top_p", top_p), ("gen_ai.embeddings.dimension.count", dimensions)):
        if value is not None:
            attributes[key] = value
    return f"{operation} {deployment.model_id}", attributes


def completion_attributes(deployment: Any, completion: Any) -> dict[str, Any]:
    usage = completion.usage
    return {"gen_ai.response.model": deployment.model_id, "gen_ai.usage.input_tokens": usage.prompt_tokens,
            "gen_ai.usage.output_tokens": usage.completion_tokens,
            "gen_ai.response.finish_reasons": [completion.finish_reason], "garden.outcome": "ok"}


def embedded_attributes(deployment: Any, embedded: Any) -> dict[str, Any]:
    return {"gen_ai.response.model": deployment.model_id, "gen_ai.usage.input_tokens": embedded.prompt_tokens,
            "garden.outcome": "ok"}
