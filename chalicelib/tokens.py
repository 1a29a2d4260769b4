"""Token estimator, used where no tokenizer answers: quota reservations and the local provider.

Rule (documented in the README): ceil(UTF-8 bytes / 4) per text, plus 4 tokens of framing per
message and 3 to prime the reply, as OpenAI's cookbook counts chat framing. Bytes rather than
characters so that non-Latin text, which tokenizers split finer, is not under-counted.
"""
from __future__ import annotations

from typing import Iterable

from chalicelib.chat import Message

PER_MESSAGE = 4
REPLY_PRIMING = 3


def text_tokens(text: str) -> int:
    return (len(text.encode("utf-8")) + 3) // 4


def prompt_tokens(messages: Iterable[Message]) -> int:
    return REPLY_PRIMING + sum(PER_MESSAGE + text_tokens(m.content) for m in messages)
