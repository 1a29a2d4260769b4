"""Builders for provider-port inputs, so provider tests read as the request they send."""
from __future__ import annotations

import time
from types import MappingProxyType
from typing import Any

from chalicelib.catalog import App, Deployment, GuardrailPolicy, PiiPolicy, Quotas
from chalicelib.chat import ChatRequest, Message, Tool
from chalicelib.providers import ProviderCall

# Read-only parameters, as the request parser leaves them: the adapter must hand botocore plain dicts.
WEATHER = Tool("get_weather", "Weather for a city",
               MappingProxyType({"type": "object", "properties": {"city": {"type": "string"}}}))


def make_app(app_id: str = "test-app", business_unit: str = "retail-banking",
             external_id: str | None = "ext-0123456789") -> App:
    return App(
        id=app_id, business_unit=business_unit, principal_arns=("arn:aws:iam::111122223333:role/r",),
        allowed_models=frozenset({"m"}), pii=PiiPolicy(input={}, output={}),
        guardrail=GuardrailPolicy(), quotas=Quotas(tokens_per_day=1_000_000), external_id=external_id,
    )


def make_call(*messages: Message, model_id: str = "anthropic.claude-3-haiku-20240307-v1:0",
              prompt_caching: bool = False, max_tokens: int = 256, deadline_s: float = 10.0,
              app: App | None = None, **request: Any) -> ProviderCall:
    deployment = Deployment(provider="bedrock", model_id=model_id, name=f"bedrock/{model_id}",
                            prompt_caching=prompt_caching)
    chat = ChatRequest(model="m", messages=messages or (Message("user", "hello"),), **request)
    return ProviderCall(app=app or make_app(), deployment=deployment, request=chat,
                        max_tokens=max_tokens, deadline=time.monotonic() + deadline_s)
