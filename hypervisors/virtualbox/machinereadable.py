"""Parsers for VBoxManage's machine-readable output (``key="value"`` lines, VM lists, progress).

Formats as documented in the VirtualBox manual, chapter 8 (``showvminfo --machinereadable``,
``snapshot list --machinereadable``, ``list vms``) and as VBoxManage prints them: numbers are unquoted,
keys holding characters other than letters and digits are quoted, snapshot keys carry the node's path
(``SnapshotName``, ``SnapshotName-1``, ``SnapshotName-1-2``).
"""

from __future__ import annotations

import re

from hypervisors.base import NativeSnapshot

_LINE_RE = re.compile(r'^(?:"(?P<qkey>(?:[^"\\]|\\.)*)"|(?P<key>[^=]+))=(?:"(?P<qval>.*)"|(?P<val>.*))$')
_VM_LINE_RE = re.compile(r'^"(?P<name>.*)" \{(?P<uuid>[0-9a-fA-F-]{36})\}$')
_PROGRESS_RE = re.compile(r"(\d{1,3})%")
_SNAPSHOT_KEY_RE = re.compile(r"^SnapshotName(?P<path>(?:-\d+)*)$")


def parse_info(text: str) -> dict[str, str]:
    """``key="value"`` lines to a dict (later duplicates win, as for a shell ``eval``)."""
    result: dict[str, str] = {}
    for line in text.splitlines():
        match = _LINE_RE.match(line.strip())
        if not match:
            continue
        key = match.group("qkey") if match.group("qkey") is not None else match.group("key")
        value = match.group("qval") if match.group("qval") is not None else match.group("val")
        result[key] = value.replace('\\"', '"').replace("\\\\", "\\")
    return result


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
