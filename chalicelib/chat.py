"""The gateway's own chat types: what the pipeline and the providers speak, free of wire details."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping


@dataclass(frozen=True, slots=True)
class Message:
    role: str  # system | user | assistant ("developer" is read as system)
    content: str


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: tuple[Message, ...]
    max_tokens: int | None = None  # as asked; the pipeline clamps it to the model's limit
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    stream: bool = False
    include_usage: bool = False
    user: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    def with_messages(self, messages: tuple[Message, ...]) -> "ChatRequest":
        return replace(self, messages=messages)


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Completion:
    """A provider's answer, normalised."""

    content: str
    finish_reason: str  # stop | length | content_filter
    usage: Usage
