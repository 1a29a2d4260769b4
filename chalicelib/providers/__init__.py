"""Provider port: one model call, normalised. One module (or folder) per provider backend."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from chalicelib.catalog import App, Deployment
from chalicelib.chat import ChatRequest, Completion


@dataclass(frozen=True, slots=True)
class ProviderCall:
    app: App  # who is calling: AWS providers assume the operations role on its behalf
    deployment: Deployment
    request: ChatRequest  # after input redaction and guardrails: what the model may see
    max_tokens: int  # clamped to the model's limit; always set
    deadline: float  # monotonic clock time by which the call must have returned


class Provider(Protocol):
    def complete(self, call: ProviderCall) -> Completion:
        """Raise a GatewayError on failure; `fallback=True` errors let the router try the next
        deployment. Honour `call.deadline`: never block past it."""
        ...
