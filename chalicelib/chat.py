"""The gateway's own chat types: what the pipeline and the providers speak, free of wire details."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as OpenAI carries it


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str | None
    parameters: Mapping[str, Any]  # the function's JSON Schema


@dataclass(frozen=True, slots=True)
class Message:
    role: str  # system | user | assistant | tool ("developer" is read as system)
    content: str  # the whole text; with parts, exactly "".join(parts)
    tool_calls: tuple[ToolCall, ...] = ()  # assistant messages that called tools
    tool_call_id: str | None = None  # tool messages: the call this result answers
    # The text parts as the caller sent them (empty when content was one string). Screening reads
    # the joined text, as a model does, and puts each redaction back into the part it began in.
    parts: tuple[str, ...] = ()
    pinned: bool = False  # the app's own system prompt from the catalog: configuration, not input

    def with_text(self, parts: tuple[str, ...]) -> "Message":
        """The same message with new text, given as parts (one part when it had none)."""
        if self.parts:
            return replace(self, content="".join(parts), parts=parts)
        return replace(self, content="".join(parts))


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
    tools: tuple[Tool, ...] = ()
    # "auto" | "none" | "required" | the name of the one function the model must call
    tool_choice: str | None = None

    def with_messages(self, messages: tuple[Message, ...]) -> "ChatRequest":
        return replace(self, messages=messages)


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cache_read_tokens: int = 0  # prompt tokens served from the provider's prompt cache
    cache_write_tokens: int = 0  # prompt tokens written to it

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Completion:
    """A provider's answer, normalised."""

    content: str
    finish_reason: str  # stop | length | tool_calls | content_filter
    usage: Usage
    tool_calls: tuple[ToolCall, ...] = ()
