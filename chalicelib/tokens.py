"""Token counts where no tokenizer answers (none for Claude, Nova or Titan runs offline).

Two uses, two rules (both in the README):
- `estimate_input_tokens`, for quota reservations, is an upper bound: ceil(UTF-8 bytes /
  `bytes_per_token`) per text, with the model's catalog floor (default 1: a byte-level BPE
  tokenizer never puts fewer than one byte in a token), over every text the provider bills
  (messages, tool calls, tool definitions as JSON), plus 4 tokens of framing per message, 3 to
  prime the reply, and the model's `input_overhead_tokens` when tools are offered (providers add a
  tool-use system prompt of their own).
- `text_tokens` / `prompt_tokens` count as `local-echo` bills: ceil(bytes / 4) per text, plus the
  same framing. Bytes rather than characters so non-Latin text is not under-counted.
"""
from __future__ import annotations

import json
import math
from typing import Any, Iterable

from chalicelib.chat import ChatRequest, Message

PER_MESSAGE = 4
REPLY_PRIMING = 3


def text_tokens(text: str) -> int:
    return (len(text.encode("utf-8")) + 3) // 4


def prompt_tokens(messages: Iterable[Message]) -> int:
    return REPLY_PRIMING + sum(PER_MESSAGE + _message_tokens(m) for m in messages)


def estimate_input_tokens(request: ChatRequest, bytes_per_token: float, overhead_tokens: int) -> int:
    """An upper bound on the prompt tokens a provider bills for `request` (see the module doc)."""
    def tokens(text: str) -> int:
        size = len(text) if text.isascii() else len(text.encode("utf-8"))
        return math.ceil(size / bytes_per_token)

    total = REPLY_PRIMING
    for m in request.messages:
        total += PER_MESSAGE + tokens(m.content) + tokens(m.tool_call_id or "")
        total += sum(tokens(c.id) + tokens(c.name) + tokens(c.arguments) for c in m.tool_calls)
    if request.tools:
        total += overhead_tokens + sum(tokens(_tool_json(t)) for t in request.tools)
    return total


def _tool_json(tool: Any) -> str:
    return json.dumps({"name": tool.name, "description": tool.description, "parameters": tool.parameters},
                      ensure_ascii=False, default=dict)  # default: read-only mappings as plain dicts


def _message_tokens(message: Message) -> int:
    calls = sum(text_tokens(c.name) + text_tokens(c.arguments) for c in message.tool_calls)
    return text_tokens(message.content) + calls
