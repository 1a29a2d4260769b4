"""A normalised view of text, and a map from the view back to the original.

What a detector reads is what a model reads, not what a regular expression sees: "４１１１", "4111\u200b1111",
"4111\u20131111", "exаmple.com" (Cyrillic а) and "pass\u00adword" mean the same to a model as their
plain forms. The PII detectors (local and Comprehend) and the local guardrail therefore judge a view
in which, one original character at a time:
- NFKC folds compatibility forms: full-width letters, digits and punctuation ("＠", "："),
  ligatures, circled and mathematical letters, superscripts;
- invisible characters vanish: format characters (Cf: zero-width space, joiners, word joiner,
  soft hyphen, BOM, bidi controls, tags), combining marks (Mn, Me: variation selectors, the
  combining grapheme joiner, and accents, so "ígnore" reads "ignore"), Hangul fillers, and
  control characters other than tab, newline and carriage return;
- every Unicode decimal digit becomes its ASCII digit; every Unicode space becomes " " (line and
  paragraph separators "\\n"); every dash and minus sign "-"; slash look-alikes "/";
- Cyrillic, Greek, Armenian and Cherokee letters that look Latin, and small capitals, become those
  Latin letters;
- JSON escapes (\\uXXXX, \\n, \\t, \\r, \\/, \\\\) are read as the character they stand for:
  tool-call arguments are JSON text, and a model reads "4111\\u00a01111" as a card number.

The view is built per original character, so a span of the view maps back to the exact span of
the original that produced it, invisible characters inside the span included (`View.original`).
Pure-ASCII text with no control characters and no backslash is its own view: nothing is copied.
"""
from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass

__all__ = ["View", "fold", "normalize"]

# Where the view can differ from the original: non-ASCII runs, ASCII controls, JSON escapes.
_SPECIAL = re.compile(r"[^\x00-\x7f]+|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\\(?:u[0-9A-Fa-f]{4}|[nrt/\\])")
_ASCII_SPECIAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\\]")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "/": "/", "\\": "\\"}

# Default-ignorable letters (category Lo, so not caught by category): Hangul fillers.
_INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")
_NEWLINES = frozenset("\u2028\u2029\x85")
_EXTRA_SPACES = frozenset("\u2800")  # braille blank: renders as a space, is a symbol (So)
_EXTRA_DASHES = frozenset("\u2212\u2796\u2043\u02d7\u2e3a\u2e3b\ufe58\ufe63\uff0d")
_SLASHES = frozenset("\u2215\u2044\u29f8\u2571")

# Letters of other scripts that render as a Latin letter (after Unicode's confusables.txt).
_HOMOGLYPHS: dict[str, str] = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ѐ": "e", "ё": "e", "і": "i", "ї": "i", "ј": "j", "к": "k", "м": "m",
    "о": "o", "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "ԁ": "d", "һ": "h",
    "ԛ": "q", "ԝ": "w", "ү": "y", "ӏ": "l", "ɡ": "g",
    "А": "A", "В": "B", "Е": "E", "І": "I", "Ј": "J", "К": "K", "М": "M", "Н": "H", "О": "O",
    "Р": "P", "С": "C", "Т": "T", "У": "Y", "Х": "X", "Ѕ": "S", "Ԛ": "Q", "Ԝ": "W", "Ү": "Y",
    "Һ": "H", "Ӏ": "I", "Ԁ": "D",
    # Greek
    "α": "a", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u",
    "χ": "x", "γ": "y", "ϲ": "c", "ϳ": "j",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N",
    "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X", "Ϲ": "C",
    # Armenian, Latin extensions, small capitals
    "օ": "o", "ս": "u", "հ": "h", "ո": "n", "ց": "g", "ı": "i", "ȷ": "j", "ɑ": "a", "ɩ": "i",
    "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ɢ": "g", "ʜ": "h", "ɪ": "i", "ᴊ": "j",
    "ᴋ": "k", "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p", "ʀ": "r", "ꜱ": "s", "ᴛ": "t",
    "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ʏ": "y", "ᴢ": "z",
    # Cherokee capitals
    "Ꭺ": "A", "Ᏼ": "B", "Ꮯ": "C", "Ꭰ": "D", "Ꭼ": "E", "Ꮐ": "G", "Ꮋ": "H", "Ꭻ": "J", "Ꮶ": "K",
    "Ꮮ": "L", "Ꮇ": "M", "Ꮲ": "P", "Ꭱ": "R", "Ꮪ": "S", "Ꭲ": "T", "Ꮩ": "V", "Ꮃ": "W", "Ꮓ": "Z",
}


def _fold_char(ch: str) -> str:
    """The view of one original character: "" (invisible), one character, or a few (NFKC "½")."""
    if ch in _INVISIBLE_LETTERS or unicodedata.category(ch) in ("Cf", "Mn", "Me", "Cc") and ch not in "\t\n\r":
        return ""
    out: list[str] = []
    for c in unicodedata.normalize("NFKC", ch):
        category = unicodedata.category(c)
        if category in ("Cf", "Mn", "Me"):
            continue
        digit = unicodedata.decimal(c, None)
        if digit is not None:
            out.append(chr(48 + digit))
        elif c in _NEWLINES:
            out.append("\n")
        elif category == "Zs" or c in _EXTRA_SPACES:
            out.append(" ")
        elif category == "Pd" or c in _EXTRA_DASHES:
            out.append("-")
        elif c in _SLASHES:
            out.append("/")
        elif c in _HOMOGLYPHS:
            out.append(_HOMOGLYPHS[c])
        elif ord(c) > 127 and category[0] == "L":
            base = unicodedata.normalize("NFD", c)[0]  # "é" -> "e", "ё" -> "е" -> "e"
            out.append(base if base.isascii() else _HOMOGLYPHS.get(base, c))
        else:
            out.append(c)
    return "".join(out)


class _Folds(dict[int, str]):
    """Code point -> its view, computed on first sight; usable as a `str.translate` table, so an
    unchanged run of non-ASCII text is checked in one C call. Bounded: a caller sending every code
    point there is must not grow a warm container's memory by a hundred megabytes."""

    def __missing__(self, code: int) -> str:
        folded = _fold_char(chr(code))
        if len(self) < _MAX_CACHED:
            self[code] = folded
        return folded


_MAX_CACHED = 1 << 16  # far more distinct characters than any language's text uses; a few MB


_FOLDS = _Folds()


@dataclass(frozen=True, slots=True)
class View:
    """`text` is the normalised view. Each view position lies in a chunk: a stretch copied from the
    original (`ends[i] < 0`), or the view of one original character or escape (`ends[i]` is where
    that source ends). `starts` is None when the view is the original itself."""

    text: str
    starts: tuple[int, ...] | None = None  # view offset where each chunk begins
    sources: tuple[int, ...] = ()  # original offset where each chunk's source begins
    ends: tuple[int, ...] = ()  # original offset where a replaced chunk's source ends; -1: copied

    @property
    def identity(self) -> bool:
        return self.starts is None

    def original(self, begin: int, end: int) -> tuple[int, int]:
        """The original span that produced view[begin:end] (end > begin): it starts where the
        source of the first view character starts and ends where the source of the last ends."""
        if self.starts is None:
            return begin, end
        i = bisect_right(self.starts, begin) - 1
        b = self.sources[i] + (begin - self.starts[i]) if self.ends[i] < 0 else self.sources[i]
        j = bisect_right(self.starts, end - 1) - 1
        e = self.sources[j] + (end - self.starts[j]) if self.ends[j] < 0 else self.ends[j]
        return b, e


def normalize(text: str) -> View:
    if text.isascii() and not _ASCII_SPECIAL.search(text):
        return View(text)
    pieces: list[str] = []
    starts: list[int] = []
    sources: list[int] = []
    ends: list[int] = []
    view_at = 0  # length of the view so far
    copied_to = 0  # original offset up to which the view is built

    def replace(begin: int, end: int, folded: str) -> None:
        nonlocal view_at, copied_to
        if begin > copied_to:
            starts.append(view_at)
            sources.append(copied_to)
            ends.append(-1)
            pieces.append(text[copied_to:begin])
            view_at += begin - copied_to
        if folded:
            starts.append(view_at)
            sources.append(begin)
            ends.append(end)
            pieces.append(folded)
            view_at += len(folded)
        copied_to = end

    for m in _SPECIAL.finditer(text):
        begin, end = m.span()
        run = m.group()
        if run[0] == "\\":
            if run[1] == "u":
                code = int(run[2:], 16)
                if 0xD800 <= code <= 0xDFFF:
                    continue  # half of a surrogate pair: left as written
                replace(begin, end, _FOLDS[code] if code > 127 or code < 32 or code == 127 else chr(code))
            else:
                replace(begin, end, _ESCAPES[run[1]])
        elif run.isascii():
            replace(begin, end, "")  # a control character
        elif run.translate(_FOLDS) != run:
            for offset, ch in enumerate(run, begin):
                folded = _FOLDS[ord(ch)]
                if folded != ch:
                    replace(offset, offset + 1, folded)
    if not starts:
        return View(text)
    replace(len(text), len(text), "")
    return View("".join(pieces), tuple(starts), tuple(sources), tuple(ends))


def fold(text: str) -> str:
    """The view's text alone, for matchers that need no offsets (the local guardrail)."""
    return normalize(text).text
