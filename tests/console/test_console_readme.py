"""README's Console section says what the console does: its commands parse with the CLI's own parser,
and the door's rules it lists are the ones the server applies."""
from __future__ import annotations

import re
import shlex

from admin_cli.console.door import SECURITY_HEADERS
from admin_cli.main import build_parser
from support import ROOT

README = (ROOT / "README.md").read_text()


def _section() -> str:
    start = README.index("\n## Console\n")
    return README[start: README.index("\n## ", start + 1)]


def test_the_commands_shown_parse() -> None:
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", _section(), re.S):
        for line in block.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith(".venv/bin/garden-admin "):
                commands.append(shlex.split(line)[1:])
    assert [c[0] for c in commands] == ["console", "console"]
    parser = build_parser()
    for argv in commands:
        args = parser.parse_args(argv)
        assert callable(args.handler)
    assert parser.parse_args(commands[1]).port == 8765 and parser.parse_args(commands[1]).no_browser


def test_the_door_it_describes() -> None:
    text = _section()
    assert "`garden-admin console` is" in text and "127.0.0.1 only" in text
    for needle in ("HttpOnly; SameSite=Strict; Path=/", "Console: http://127.0.0.1:", "405", "all times UTC"):
        assert needle in text, needle
    assert SECURITY_HEADERS["X-Frame-Options"] in text and SECURITY_HEADERS["Referrer-Policy"] in text
