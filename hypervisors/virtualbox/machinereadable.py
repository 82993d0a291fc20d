"""Parsers for VBoxManage's machine-readable output (``key="value"`` lines, VM lists, progress).

Formats as documented in the VirtualBox manual, chapter 8 (``showvminfo --machinereadable``,
``snapshot list --machinereadable``, ``list vms``) and as VBoxManage prints them: numbers are unquoted,
keys holding characters other than letters and digits are quoted, snapshot keys carry the node's path
(``SnapshotName``, ``SnapshotName-1``, ``SnapshotName-1-2``). A quoted value escapes only ``"`` and
``\\`` (VBoxManageInfo.cpp: outputMachineReadableString) and keeps its newlines, so a multi-line
description spans several lines of output. Lines that are not ``key=value`` (7.0 prints
``Encryption:     disabled``; the Linux wrapper script prints its vboxdrv warning on stdout) are skipped.
"""

from __future__ import annotations

import re

from hypervisors.base import NativeSnapshot

_KEY_RE = re.compile(r'"((?:[^"\\\n]|\\.)*)"=|([^"=\n][^=\n]*)=')
_VM_LINE_RE = re.compile(r'^"(?P<name>.*)" \{(?P<uuid>[0-9a-fA-F-]{36})\}$')
_PROGRESS_RE = re.compile(r"(\d{1,3})%")
_SNAPSHOT_KEY_RE = re.compile(r"^SnapshotName(?P<path>(?:-\d+)*)$")


def parse_info(text: str) -> dict[str, str]:
    """``key="value"`` lines to a dict (later duplicates win, as for a shell ``eval``).

    A quoted value runs to its closing unescaped quote, across newlines.
    """
    result: dict[str, str] = {}
    pos, end = 0, len(text)
    while pos < end:
        while pos < end and text[pos] in " \t\r\n":
            pos += 1
        match = _KEY_RE.match(text, pos)
        if match is None:  # not a key=value line: skip it
            newline = text.find("\n", pos)
            pos = end if newline < 0 else newline + 1
            continue
        key = _unescape(match.group(1)) if match.group(1) is not None else match.group(2).strip()
        pos = match.end()
        if pos < end and text[pos] == '"':
            value, pos = _quoted(text, pos + 1)
        else:
            newline = text.find("\n", pos)
            stop = end if newline < 0 else newline
            value, pos = text[pos:stop].rstrip("\r"), stop
        result[key] = value
    return result


def _quoted(text: str, pos: int) -> tuple[str, int]:
    """The value of a quoted string starting after its quote, and the position after its closing quote."""
    out: list[str] = []
    while pos < len(text):
        char = text[pos]
        if char == "\\" and pos + 1 < len(text) and text[pos + 1] in '"\\':
            out.append(text[pos + 1])
            pos += 2
        elif char == '"':
            return "".join(out), pos + 1
        else:
            out.append(char)
            pos += 1
    return "".join(out), pos  # unterminated: the rest of the output


def _unescape(value: str) -> str:
    return re.sub(r'\\(["\\])', r"\1", value)


def parse_medium_info(text: str) -> dict[str, str]:
    """``showmediuminfo``'s ``Key:   value`` lines (first occurrence wins; continuation lines are skipped)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and not line[:1].isspace() and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    return fields


def parse_medium_list(text: str) -> list[dict[str, str]]:
    """``list hdds``: blocks of ``Key: value`` lines separated by blank lines."""
    return [fields for block in re.split(r"\n\s*\n", text) if (fields := parse_medium_info(block))]


def parse_vm_list(text: str) -> dict[str, str]:
    """``"name" {uuid}`` lines to {name: uuid}."""
    vms: dict[str, str] = {}
    for line in text.splitlines():
        match = _VM_LINE_RE.match(line.strip())
        if match:
            vms[match.group("name")] = match.group("uuid")
    return vms


def parse_progress(text: str) -> list[int]:
    """Percentages of a ``0%...10%...`` progress line, in order."""
    return [int(p) for p in _PROGRESS_RE.findall(text)]


def parse_snapshot_tree(info: dict[str, str]) -> tuple[list[NativeSnapshot], str | None]:
    """The snapshot nodes of a machine-readable listing, parents first, and the current snapshot's UUID."""
    by_path: dict[str, str] = {}
    nodes: list[tuple[str, str, str]] = []  # path, uuid, name
    for key, name in info.items():
        match = _SNAPSHOT_KEY_RE.match(key)
        if not match:
            continue
        path = match.group("path")
        uuid = info.get(f"SnapshotUUID{path}")
        if uuid is None:
            continue
        by_path[path] = uuid
        nodes.append((path, uuid, name))
    snapshots = []
    for path, uuid, name in sorted(nodes, key=lambda n: n[0].count("-")):
        parent_path = path.rsplit("-", 1)[0] if path.count("-") > 1 else ""
        parent = by_path.get(parent_path) if path else None
        if path and path.count("-") == 1:
            parent = by_path.get("")  # children of the root carry one index
        snapshots.append(NativeSnapshot(id=uuid, name=name, parent_id=parent))
    return snapshots, info.get("CurrentSnapshotUUID") or None
