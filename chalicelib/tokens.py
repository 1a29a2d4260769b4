"""Token estimator, used where no tokenizer answers: quota reservations and the local provider.

Rule (documented in the README): ceil(UTF-8 bytes / 4) per text (tool names, arguments and
definitions as JSON included), plus 4 tokens of framing per message and 3 to prime the reply, as OpenAI's cookbook counts chat framing. Bytes rather than
characters so that non-Latin text, which tokenizers split finer, is not under-counted.
"""
from __future__ import annotations

import json
from typing import Iterable

from chalicelib.chat import ChatRequest, Message

PER_MESSAGE = 4
REPLY_PRIMING = 3


def text_tokens(text: str) -> int:
    return (len(text.encode("utf-8")) + 3) // 4


def prompt_tokens(messages: Iterable[Message]) -> int:
    return REPLY_PRIMING + sum(PER_MESSAGE + _message_tokens(m) for m in messages)


def request_tokens(request: ChatRequest) -> int:
    """The prompt as a provider will bill it: messages, plus tool definitions as JSON."""
    tools = sum(text_tokens(json.dumps({"name": t.name, "description": t.description,
                                        "parameters": t.parameters})) for t in request.tools)
    return prompt_tokens(request.messages) + tools


def _message_tokens(message: Message) -> int:
    calls = sum(text_tokens(c.name) + text_tokens(c.arguments) for c in message.tool_calls)
    return text_tokens(message.content) + calls
