"""chalicelib.textnorm: the normalised view the PII detectors and the local guardrail read, and its
map back to the original text."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.textnorm import fold, normalize


@pytest.mark.parametrize(("text", "view"), [
    ("plain ASCII, tabs\tand\nnewlines", "plain ASCII, tabs\tand\nnewlines"),
    ("\uff14\uff11 \u0664\u0661 \u096a\u0967 \U0001d7d2", "41 41 41 4"),  # full-width, Arabic-Indic, Devanagari, math
    ("a\u00a0b\u202fc\u2009d\u3000e\u2800f", "a b c d e f"),  # no-break, narrow, thin, ideographic, braille blank
    ("1\u20132\u20143\u22124\u20115\uff0d6", "1-2-3-4-5-6"),  # en, em, minus, non-breaking hyphen, full-width
    ("z\u200bw\u200cj\u200dw\u2060s\u00adb\ufeffr\u202el\u2066v\ufe0fx", "zwjwsbrlvx"),  # invisible characters
    ("\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0456\u0458\u0455\u0501 \u03bf\u03bd\u03c1", "aeopcyxijsd ovp"),
    ("\uff30\uff41\uff53\uff53\uff57\uff4f\uff52\uff44\uff1a \uff20", "Password: @"),  # full-width forms
    ("\u00bd \ufb01 \u2460 \u00e9\u0301 \u00fc", "1/2 fi 1 e u"),  # expansions and accents
    ("line\u2028next\x00\x07", "line\nnext"),  # line separator; control characters vanish
    ("4111\\u00a01111\\n\\u200b\\\\u200b", "4111 1111\n\\u200b"),  # JSON escapes read as what they mean
    ("emoji \U0001f642 and \u4e2d\u6587 stay", "emoji \U0001f642 and \u4e2d\u6587 stay"),
])
def test_view(text: str, view: str) -> None:
    assert fold(text) == view


def test_ascii_text_is_its_own_view() -> None:
    text = "Card 4111 1111 1111 1111, mail a@b.io"
    view = normalize(text)
    assert view.identity and view.text is text and view.original(5, 24) == (5, 24)


def test_span_maps_to_the_exact_original_invisible_characters_inside_included() -> None:
    text = "pay \uff14\uff11\uff11\uff11\u200b 1111\u00ad1111\u20131111\u2060 now"
    view = normalize(text)
    assert view.text == "pay 4111 11111111-1111 now"
    begin = view.text.index("4111")
    b, e = view.original(begin, begin + len("4111 11111111-1111"))
    assert text[b:e] == "\uff14\uff11\uff11\uff11\u200b 1111\u00ad1111\u20131111"  # the trailing word joiner is not


def test_expanded_character_maps_back_whole() -> None:
    text = "x \u00bd y"
    view = normalize(text)
    assert view.text == "x 1/2 y"
    assert [view.original(i, i + 1) for i in range(2, 5)] == [(2, 3)] * 3


pieces = st.sampled_from([
    "a", "Z", "4", " ", "-", ".", "\n", "\t", "\u200b", "\u00ad", "\u2060", "\ufeff", "\u202e", "\ufe0f", "\u00a0",
    "\u2013", "\u2212", "\uff14", "\u0664", "\u0430", "\u03bf", "\u00bd", "\ufb01", "\u00e9", "e\u0301", "\U0001f642",
    "\u4e2d", "\\u00a0", "\\n", "\\\\", "\\", "\x00", "\U0001d7d2", "\u2028", "\uff20",
])


@settings(max_examples=300, deadline=None)
@given(st.lists(pieces | st.text(max_size=3), max_size=40).map("".join))
def test_every_view_span_maps_to_an_in_bounds_monotonic_original_span(text: str) -> None:
    view = normalize(text)
    n = len(view.text)
    spans = [view.original(i, i + 1) for i in range(n)]
    assert all(0 <= b < e <= len(text) for b, e in spans)
    for (b0, e0), (b1, e1) in zip(spans, spans[1:], strict=False):
        assert (b1, e1) == (b0, e0) or b1 >= e0  # one expanded character, or the next source
    for i in range(0, n, 3):  # wider spans: from the first character's source to the last's
        for j in range(i + 1, min(n, i + 12) + 1):
            assert view.original(i, j) == (view.original(i, i + 1)[0], view.original(j - 1, j)[1])
    assert fold(view.text) == view.text or "\\" in view.text  # a view is its own view (escapes aside)


def test_the_fold_cache_is_bounded() -> None:
    from chalicelib import textnorm

    rare = "".join(chr(c) for c in range(0x20000, 0x20000 + textnorm._MAX_CACHED + 1000))  # CJK ideographs
    assert len(fold(rare)) == len(rare)
    assert len(textnorm._FOLDS) <= textnorm._MAX_CACHED
    assert fold("\uff14\u200b") == "4"  # still folds once the cache is full
