"""Provider port: one model call, normalised. One module (or folder) per provider backend."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from chalicelib.catalog import Deployment
from chalicelib.chat import ChatRequest, Completion


@dataclass(frozen=True, slots=True)
class ProviderCall:
    deployment: Deployment
    request: ChatRequest  # after input redaction and guardrails: what the model may see
    max_tokens: int  # clamped to the model's limit; always set
    deadline: float  # monotonic clock time by which the call must have returned


class Provider(Protocol):
    def complete(self, call: ProviderCall) -> Completion: ...
