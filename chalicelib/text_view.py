"""Many texts screened as one, and each edit put back where it belongs.

A request's caller texts (content parts, tool-call arguments, tool definitions, names and ids) are
laid out in one `TextView`: editable slots with fixed separators between them. A detector reads
the whole view once (one Comprehend call per request, and an entity split across two content parts
is one entity), and `apply` turns edits on the view back into new text per slot: a replacement
lands in the first slot its entity touches; the entity's characters in later slots are removed.

JSON documents (tool arguments and parameter schemas) are laid out as `key: value` lines, so a
detector keeps the context a key gives ("password: ...") while only keys and values are editable:
the JSON stays JSON whatever is redacted.
"""
from __future__ import annotations

import json
from bisect import bisect_right
from typing import Any, Mapping, Sequence

Edit = tuple[int, int, str]  # begin, end (exclusive) in the view's text, and the replacement


class TextView:
    def __init__(self) -> None:
        self._chunks: list[str] = []
        self._length = 0
        self.slots: list[tuple[int, int]] = []  # (begin, end) of each slot in the text
        self._starts: list[int] = []

    def add(self, text: str) -> int:
        """Append an editable slot; returns its index."""
        self.slots.append((self._length, self._length + len(text)))
        self._starts.append(self._length)
        self._append(text)
        return len(self.slots) - 1

    def separate(self, text: str) -> None:
        """Append fixed text that no edit may change (separators, JSON structure)."""
        self._append(text)

    @property
    def text(self) -> str:
        if len(self._chunks) > 1:
            self._chunks = ["".join(self._chunks)]
        return self._chunks[0] if self._chunks else ""

    def originals(self) -> list[str]:
        text = self.text
        return [text[a:b] for a, b in self.slots]

    def touched(self, edit: Edit) -> list[int]:
        """The slots an edit overlaps, in order."""
        begin, end, _ = edit
        i = max(0, bisect_right(self._starts, begin) - 1)
        out = []
        while i < len(self.slots) and self.slots[i][0] < end:
            a, b = self.slots[i]
            if a < end and b > begin:
                out.append(i)
            i += 1
        return out

    def apply(self, edits: Sequence[Edit]) -> list[str]:
        """New text for every slot once `edits` (sorted, non-overlapping) are made."""
        text = self.text
        local: list[list[Edit]] = [[] for _ in self.slots]
        for edit in edits:
            begin, end, replacement = edit
            for n, i in enumerate(self.touched(edit)):
                a, b = self.slots[i]
                local[i].append((max(begin, a) - a, min(end, b) - a, replacement if n == 0 else ""))
        out = []
        for (a, b), changes in zip(self.slots, local, strict=True):
            slot = text[a:b]
            pieces, cursor = [], 0
            for begin, end, replacement in changes:
                pieces += (slot[cursor:begin], replacement)
                cursor = end
            pieces.append(slot[cursor:])
            out.append("".join(pieces))
        return out

    def _append(self, text: str) -> None:
        if text:
            self._chunks.append(text)
            self._length += len(text)


# --- JSON documents as key: value lines ------------------------------------------------------------

JsonLayout = tuple  # ("str", slot) | ("num", slot, text, value) | ("const", value) | ("list", [..]) | ("dict", [(slot, ..)])


def add_json(view: TextView, value: Any) -> JsonLayout:
    """Lay a parsed JSON value out in `view`; the layout rebuilds it from the slots' new texts."""
    if isinstance(value, str):
        return ("str", view.add(value))
    if isinstance(value, bool) or value is None:
        view.separate(json.dumps(value))
        return ("const", value)
    if isinstance(value, (int, float)):
        text = json.dumps(value)
        return ("num", view.add(text), text, value)
    if isinstance(value, (list, tuple)):
        items = []
        for item in value:
            items.append(add_json(view, item))
            view.separate("\n")
        return ("list", items)
    if isinstance(value, Mapping):
        entries = []
        for key, item in value.items():
            key_slot = view.add(key)
            view.separate(": ")
            entries.append((key_slot, add_json(view, item)))
            view.separate("\n")
        return ("dict", entries)
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def rebuild_json(layout: JsonLayout, texts: Sequence[str]) -> Any:
    kind = layout[0]
    if kind == "str":
        return texts[layout[1]]
    if kind == "num":  # an edited number becomes the string that replaced it
        _, slot, original, value = layout
        return value if texts[slot] == original else texts[slot]
    if kind == "const":
        return layout[1]
    if kind == "list":
        return [rebuild_json(item, texts) for item in layout[1]]
    return {texts[key_slot]: rebuild_json(item, texts) for key_slot, item in layout[1]}


def json_slots(layout: JsonLayout) -> list[int]:
    kind = layout[0]
    if kind in ("str", "num"):
        return [layout[1]]
    if kind == "list":
        return [s for item in layout[1] for s in json_slots(item)]
    if kind == "dict":
        return [s for key_slot, item in layout[1] for s in (key_slot, *json_slots(item))]
    return []
