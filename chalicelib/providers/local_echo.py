"""`local-echo`: a deterministic model that answers with the last user message as it received it.

It makes governance visible end to end: whatever redaction or guardrails did to the prompt shows up
verbatim in the reply. Token counts come from the documented estimator in `tokens.py`; `max_tokens`
truncates (finish_reason "length") and stop sequences cut (finish_reason "stop"), as a model would.
"""
from __future__ import annotations

from chalicelib.chat import Completion, Usage
from chalicelib.providers import ProviderCall
from chalicelib.tokens import prompt_tokens, text_tokens


class LocalEchoProvider:
    def complete(self, call: ProviderCall) -> Completion:
        messages = call.request.messages
        reply = next((m.content for m in reversed(messages) if m.role == "user"), "")
        finish_reason = "stop"
        for stop in call.request.stop:
            cut = reply.find(stop)
            if cut != -1:
                reply = reply[:cut]
        if text_tokens(reply) > call.max_tokens:
            reply = _truncate_to_tokens(reply, call.max_tokens)
            finish_reason = "length"
        return Completion(reply, finish_reason, Usage(prompt_tokens(messages), text_tokens(reply)))


def _truncate_to_tokens(text: str, tokens: int) -> str:
    # The estimator counts 4 UTF-8 bytes a token: keep at most that many bytes, whole characters.
    return text.encode("utf-8")[: tokens * 4].decode("utf-8", errors="ignore")
