"""Text that is safe to print, without rich or typer: what the quick listings and the full CLI print through.

An ESC sequence in a signer's name or a state's note could hide text or forge a line, so every
control character but the newline (and every bidi override) is printed as a visible escape
(``\\x1b``). This module imports nothing heavy, so :mod:`vmlog.cli.fast` uses it as the full
command's :mod:`vmlog.cli.output` does.
"""

from __future__ import annotations

import json
import sys
from typing import Any

_BIDI = [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_CONTROLS = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)] if c != 0x0A}
_CONTROLS.update({c: f"\\u{c:04x}" for c in _BIDI})
_ONE_LINE = {**_CONTROLS, 0x0A: "\\n"}


def visible(text: str) -> str:
    """``text`` with every control character but the newline (and bidi overrides) as a visible escape."""
    return text.translate(_CONTROLS)


def one_line(text: str) -> str:
    """``text`` on one line: newlines too become visible escapes (for prompts and one-line reports)."""
    return text.translate(_ONE_LINE)


def print_json(data: Any) -> None:
    """A listing's ``--json`` on stdout (JSON escapes control characters itself)."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
