"""Provider port: one model call, normalised. One folder per provider backend.

A provider serves chat (`complete`), embeddings (`embed`), or both; the catalog says which
providers serve which kind of model (catalog_rules._CHAT_PROVIDERS / _EMBEDDING_PROVIDERS).
"""
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
    request_id: str = ""  # the gateway's request id (Bedrock requestMetadata: reconciliation)


@dataclass(frozen=True, slots=True)
class EmbeddingCall:
    app: App
    deployment: Deployment
    inputs: tuple[str, ...]  # after input redaction and guardrails, in the caller's order
    dimensions: int | None  # None: the model's default (the caller did not ask)
    deadline: float


@dataclass(frozen=True, slots=True)
class Embedded:
    vectors: tuple[tuple[float, ...], ...]  # one per input, in order
    prompt_tokens: int  # as the provider reports it (or the gateway's estimate where it reports none)


class Provider(Protocol):
    def complete(self, call: ProviderCall) -> Completion:
        """Raise a GatewayError on failure; `fallback=True` errors let the router try the next
        deployment, and its `signal` tells the breakers what the failure says about the
        deployment. Honour `call.deadline`: never block past it."""
        ...


class EmbeddingProvider(Protocol):
    def embed(self, call: EmbeddingCall) -> Embedded:
        """As `Provider.complete`, for embeddings."""
        ...
