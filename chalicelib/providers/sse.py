"""Server-sent events: bytes in pieces split at any byte -> the `data` of each event. Pure.

The parsing rules of the HTML standard's EventSource that an OpenAI-style stream needs: lines end in
CRLF, LF or CR (a CRLF may be split across pieces); a blank line ends an event; `data` lines join with
LF; one space after the colon is dropped; comment lines (`:`) and other fields are ignored. Lines are
decoded whole, so a UTF-8 character split across pieces is never cut.
"""
from __future__ import annotations

import re

_EOL = re.compile(rb"[\r\n]")


class SseDecoder:
    def __init__(self) -> None:
        self._buffer = bytearray()
        self._data: list[str] = []

    def feed(self, piece: bytes) -> list[str]:
        """The events completed by `piece`. Raises UnicodeDecodeError on a line that is not UTF-8."""
        self._buffer += piece
        return self._lines(final=False)

    def end(self) -> list[str]:
        """At the end of the stream: an event still open is dispatched (a last `data:` line without
        its blank line, as some servers end a stream)."""
        events = self._lines(final=True)
        if self._buffer:
            events += self._line(bytes(self._buffer))
            self._buffer.clear()
        return events + self._line(b"")

    def _lines(self, final: bool) -> list[str]:
        events: list[str] = []
        start = 0
        buffer = self._buffer
        while True:
            match = _EOL.search(buffer, start)
            if match is None:
                break
            end = match.start()
            if buffer[end] == 0x0D:  # CR: a CRLF whose LF may still be on its way
                if end + 1 == len(buffer) and not final:
                    break
                size = 2 if buffer[end + 1:end + 2] == b"\n" else 1
            else:
                size = 1
            events += self._line(bytes(buffer[start:end]))
            start = end + size
        del buffer[:start]
        return events

    def _line(self, line: bytes) -> list[str]:
        if not line:
            if not self._data:
                return []
            event, self._data = "\n".join(self._data), []
            return [event]
        if line.startswith(b":"):
            return []
        field, _, value = line.partition(b":")
        if field == b"data":
            self._data.append((value[1:] if value.startswith(b" ") else value).decode("utf-8"))
        return []
