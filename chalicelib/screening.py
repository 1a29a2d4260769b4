"""What the screens see of a chat: every caller-controlled text that is forwarded to a model.

PII (input): one `TextView` over the whole request, so the detector runs once and sees content
parts as one text. Texts that are redacted in place: message content (per part), tool-call
arguments and tool parameter schemas (as JSON: keys and values), tool descriptions. Identifiers
that cannot be redacted without breaking the conversation (tool names, tool-call ids and names,
`tool_call_id`, stop sequences) are refused with 400 when the policy would change them.

Guardrail (input): every caller message, system and developer ones included, tool-call arguments,
tool descriptions and parameter schemas, each judged as one text. Pinned messages (the app's own
system prompt from the catalog) are configuration and are neither screened nor judged.
"""
from __future__ import annotations

import json
from dataclasses import replace
from types import MappingProxyType
from typing import Any, Sequence

from chalicelib.catalog import App
from chalicelib.chat import ChatRequest, Completion, Message, Tool, ToolCall
from chalicelib.errors import InvalidRequest
from chalicelib.text_view import Edit, JsonLayout, TextView, add_json, json_slots, rebuild_json

_BETWEEN = "\n\n"  # between fields: a detector's separator rules may still join digits across it


class _Json:
    """A JSON text laid out as key: value lines, or kept as one raw slot when it is not JSON."""

    def __init__(self, view: TextView, text: str) -> None:
        self.text = text
        self.layout: JsonLayout | None = None
        value = _json_document(text)
        if value is not None:
            self.layout = add_json(view, value)
            self.slots = json_slots(self.layout)
        else:
            self.slots = [view.add(text)]

    def rebuilt(self, texts: Sequence[str], originals: Sequence[str]) -> str:
        if all(texts[s] == originals[s] for s in self.slots):
            return self.text  # untouched: keep the caller's exact formatting
        if self.layout is None:
            return texts[self.slots[0]]
        return json.dumps(rebuild_json(self.layout, texts), ensure_ascii=False)


class InputView:
    """The caller's texts of a chat request, laid out for one PII detection pass."""

    def __init__(self, chat: ChatRequest) -> None:
        self.chat = chat
        self.view = TextView()
        self._identifiers: dict[int, str] = {}  # slot -> the request field it came from
        self._messages: list[tuple[list[int], list[tuple[int, int, _Json]], int | None]] = []
        for i, m in enumerate(chat.messages):
            if m.pinned:
                self._messages.append(([], [], None))
                continue
            parts = [self.view.add(p) for p in (m.parts or (m.content,))]
            calls = []
            for j, call in enumerate(m.tool_calls):
                self.view.separate(_BETWEEN)
                at = f"messages[{i}].tool_calls[{j}]"
                call_id = self._identifier(call.id, f"{at}.id")
                name = self._identifier(call.name, f"{at}.function.name")
                self.view.separate("\n")
                calls.append((call_id, name, _Json(self.view, call.arguments)))
            answered = None
            if m.tool_call_id is not None:
                self.view.separate(_BETWEEN)
                answered = self._identifier(m.tool_call_id, f"messages[{i}].tool_call_id")
            self._messages.append((parts, calls, answered))
            self.view.separate(_BETWEEN)
        self._tools = []
        for k, tool in enumerate(chat.tools):
            name = self._identifier(tool.name, f"tools[{k}].function.name")
            self.view.separate("\n")
            description = self.view.add(tool.description) if tool.description else None
            self.view.separate("\n")
            schema = _Json(self.view, json.dumps(_plain(tool.parameters), ensure_ascii=False))
            self._tools.append((name, description, schema))
            self.view.separate(_BETWEEN)
        self._stops = [self._identifier(s, "stop") for s in chat.stop]

    @property
    def text(self) -> str:
        return self.view.text

    def rebuild(self, edits: Sequence[Edit]) -> ChatRequest:
        """The request with `edits` made; InvalidRequest if an edit would change an identifier."""
        if not edits:
            return self.chat
        for edit in edits:
            for slot in self.view.touched(edit):
                if slot in self._identifiers:
                    param = self._identifiers[slot]
                    raise InvalidRequest(
                        f"{param}: holds personal data that this app's policy does not allow, and a "
                        "name or id cannot be redacted: remove it", code="pii_blocked", param=param)
        originals, texts = self.view.originals(), self.view.apply(edits)
        messages = []
        for m, (parts, calls, _) in zip(self.chat.messages, self._messages, strict=True):
            if m.pinned:
                messages.append(m)
                continue
            new_calls = tuple(replace(c, arguments=args.rebuilt(texts, originals))
                              for c, (_, _, args) in zip(m.tool_calls, calls, strict=True))
            messages.append(replace(m.with_text(tuple(texts[s] for s in parts)), tool_calls=new_calls))
        tools = tuple(
            Tool(t.name, texts[description] if description is not None else t.description,
                 json.loads(schema.rebuilt(texts, originals)))
            for t, (_, description, schema) in zip(self.chat.tools, self._tools, strict=True)
        )
        return replace(self.chat, messages=tuple(messages), tools=tools)

    def _identifier(self, text: str, param: str) -> int:
        slot = self.view.add(text)
        self._identifiers[slot] = param
        return slot


class OutputView:
    """A completion's content and tool-call arguments, laid out for one PII detection pass."""

    def __init__(self, completion: Completion) -> None:
        self.completion = completion
        self.view = TextView()
        self._content = self.view.add(completion.content)
        self._arguments = []
        for call in completion.tool_calls:
            self.view.separate(_BETWEEN)
            self._arguments.append(_Json(self.view, call.arguments))

    @property
    def text(self) -> str:
        return self.view.text

    def rebuild(self, edits: Sequence[Edit]) -> Completion:
        if not edits:
            return self.completion
        originals, texts = self.view.originals(), self.view.apply(edits)
        calls = tuple(replace(c, arguments=a.rebuilt(texts, originals))
                      for c, a in zip(self.completion.tool_calls, self._arguments, strict=True))
        return replace(self.completion, content=texts[self._content], tool_calls=calls)


# --- the app's pinned system prompt --------------------------------------------------------------

def pin_system_prompt(app: App, chat: ChatRequest) -> ChatRequest:
    """Put the app's own system prompt first; refuse or keep (to be screened) the caller's."""
    pinned = app.system_prompt
    if pinned is None:
        return chat
    if pinned.caller_system == "refuse":
        for i, m in enumerate(chat.messages):
            if m.role == "system":  # developer messages were read as system by the parser
                raise InvalidRequest(
                    "this app pins its own system prompt: send no system or developer message",
                    code="system_prompt_pinned", param=f"messages[{i}].role")
    return replace(chat, messages=(Message("system", pinned.text, pinned=True), *chat.messages))


# --- guardrail slots ---------------------------------------------------------------------------

def guard_texts(chat: ChatRequest) -> list[str]:
    """Every caller text a guardrail judges, in a fixed order `with_guarded_texts` relies on."""
    texts: list[str] = []
    for m in chat.messages:
        if m.pinned:
            continue
        texts.append(m.content)
        texts += [c.arguments for c in m.tool_calls]
    for tool in chat.tools:
        texts += [tool.description or "", json.dumps(_plain(tool.parameters), ensure_ascii=False)]
    return texts


def with_guarded_texts(chat: ChatRequest, texts: Sequence[str]) -> ChatRequest:
    """`chat` with the texts a masking guardrail rewrote (same order as `guard_texts`)."""
    rest = iter(texts)
    messages: list[Message] = []
    for m in chat.messages:
        if m.pinned:
            messages.append(m)
            continue
        content = next(rest)
        calls = tuple(replace(c, arguments=next(rest)) for c in m.tool_calls)
        # A masked message becomes one part: a guardrail's rewrite cannot be split back.
        message = m if content == m.content else replace(m, content=content, parts=())
        messages.append(replace(message, tool_calls=calls))
    tools = []
    for k, tool in enumerate(chat.tools):
        description, schema = next(rest), next(rest)
        parameters = _json_document(schema)
        if not isinstance(parameters, dict):
            raise InvalidRequest("tools: the guardrail masked a parameter schema beyond repair",
                                 code="content_filter", param=f"tools[{k}].function.parameters")
        tools.append(Tool(tool.name, description or None, parameters))
    if next(rest, None) is not None:
        raise ValueError("more guarded texts than slots")  # a bug, not a caller error
    return replace(chat, messages=tuple(messages), tools=tuple(tools))


def output_guard_texts(completion: Completion) -> list[str]:
    return [completion.content] + [c.arguments for c in completion.tool_calls]


def with_output_guarded_texts(completion: Completion, texts: Sequence[str]) -> Completion:
    content, *arguments = texts
    calls: tuple[ToolCall, ...] = tuple(
        replace(c, arguments=a) for c, a in zip(completion.tool_calls, arguments, strict=True))
    return replace(completion, content=content, tool_calls=calls)


def _json_document(text: str) -> Any:
    """A JSON object or array parsed from `text`, or None (not JSON, or only a scalar)."""
    if not text or text.lstrip()[:1] not in ("{", "["):
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, (dict, list)) else None


def _plain(value: Any) -> Any:
    """Read-only mappings (as the parser leaves tool schemas) -> plain dicts, for json.dumps."""
    if isinstance(value, (dict, MappingProxyType)):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
