"""JSON from outside, parsed with limits: size, nesting depth, finite numbers; a clear error instead of a crash.

Python's parser recurses once per nesting level, so a few kilobytes of ``[[[[...`` from a catalog,
a bundle manifest or a box's metadata.json end in ``RecursionError``, and code walking the result
recurses again. :func:`loads` scans the text first (brackets outside strings) and refuses what is
too deep or too large before parsing; ``NaN``, ``Infinity`` and numbers that overflow to them are
refused too. :class:`UnsafeJson` is a ``ValueError``, so callers that already turn malformed JSON
into their own error do the same for this.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

DEFAULT_MAX_DEPTH = 64
DEFAULT_MAX_BYTES = 16 << 20

_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class UnsafeJson(ValueError):
    """JSON too large, nested too deeply, or holding a non-finite number; ``str()`` says which."""


def nesting_depth(data: bytes) -> int:
    """The deepest nesting of arrays and objects in ``data`` (brackets inside strings do not count)."""
    brackets = _STRINGS.sub(b"", data).translate(None, _NOT_BRACKETS)
    return max(accumulate(_STEP[c] for c in brackets), default=0)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UnsafeJson(f"the number {text[:40]} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise UnsafeJson(f"{name} is not a number JSON allows here")


def loads(
    data: bytes | str, *, what: str = "the JSON document", max_depth: int = DEFAULT_MAX_DEPTH,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Any:
    """Parse ``data``; raise :class:`UnsafeJson` (naming ``what``) past the limits, ``ValueError`` if malformed."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if len(raw) > max_bytes:
        raise UnsafeJson(f"{what} is {len(raw)} bytes, over the limit of {max_bytes}")
    depth = nesting_depth(raw)
    if depth > max_depth:
        raise UnsafeJson(f"{what} is nested {depth} levels deep, over the limit of {max_depth}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} is not UTF-8 ({exc.reason})") from None
    try:
        return json.loads(text, parse_float=_finite, parse_constant=_no_constant)
    except UnsafeJson as exc:
        raise UnsafeJson(f"{what}: {exc}") from None
    except RecursionError:  # unreachable past the depth check; kept so no parser path crashes
        raise UnsafeJson(f"{what} is nested too deeply") from None


def check(data: bytes | str, *, what: str = "the JSON document", max_depth: int = DEFAULT_MAX_DEPTH,
          max_bytes: int = DEFAULT_MAX_BYTES) -> None:
    """Raise :class:`UnsafeJson` if ``data`` is past the limits, without keeping the parsed value."""
    loads(data, what=what, max_depth=max_depth, max_bytes=max_bytes)
