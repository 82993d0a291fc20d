"""VMware's snapshot tree, read from the VM's ``.vmsd`` file, and the ``a/b/c`` names ``vmrun`` takes.

``.vmsd`` (same dictionary format as ``.vmx``) holds ``snapshot.current``, ``snapshot.lastUID`` and,
per node, ``snapshotN.uid``, ``.displayName``, ``.parent`` (a uid), and per disk it froze
``.diskM.fileName`` (the delta VMDK, frozen from then on) and ``.diskM.node`` (the ``.vmx`` device
it belongs to, ``scsi0:0``). ``vmrun``
names snapshots by display name or by path of names from the root (``a/b/c``); two siblings with the
same name make that path ambiguous, which is why vmlog keeps sibling names unique.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from hypervisors.vmware import vmx

_NODE_RE = re.compile(r"^snapshot(\d+)\.uid$")


@dataclass(frozen=True)
class SnapshotNode:
    uid: str
    name: str
    parent: str | None
    disks: tuple[str, ...]
    memory_file: str | None
    disk_nodes: tuple[tuple[str, str], ...] = ()  # (device node, frozen file name) of each disk


def read_tree(vmsd_path: Path) -> tuple[dict[str, SnapshotNode], str | None]:
    values = vmx.read(vmsd_path)
    nodes: dict[str, SnapshotNode] = {}
    for key, uid in values.items():
        match = _NODE_RE.match(key)
        if not match:
            continue
        prefix = f"snapshot{match.group(1)}"
        file_keys = [k for k in sorted(values) if k.startswith(prefix + ".disk") and k.endswith(".fileName")]
        disk_nodes = tuple(
            (values[key.removesuffix(".fileName") + ".node"], values[key])
            for key in file_keys if key.removesuffix(".fileName") + ".node" in values
        )
        nodes[uid] = SnapshotNode(uid=uid, name=values.get(f"{prefix}.displayName", ""),
                                  parent=values.get(f"{prefix}.parent") or None,
                                  disks=tuple(values[k] for k in file_keys),
                                  memory_file=values.get(f"{prefix}.vmState") or None, disk_nodes=disk_nodes)
    current = values.get("snapshot.current") or None
    return nodes, current if current in nodes else None


def path_of(nodes: dict[str, SnapshotNode], uid: str) -> str:
    names = []
    node: SnapshotNode | None = nodes[uid]
    while node is not None:
        names.append(node.name)
        node = nodes.get(node.parent) if node.parent else None
    return "/".join(reversed(names))


def is_ambiguous(nodes: dict[str, SnapshotNode], uid: str) -> bool:
    path = path_of(nodes, uid)
    return sum(1 for other in nodes if path_of(nodes, other) == path) > 1


def unique_child_name(nodes: dict[str, SnapshotNode], parent: str | None, wanted: str) -> str:
    """``wanted``, or ``wanted (2)``, ``wanted (3)``... so that no sibling under ``parent`` shares it.

    ``/`` separates path elements in vmrun's names, so it cannot appear in a name.
    """
    wanted = wanted.replace("/", "-") or "state"
    taken = {n.name for n in nodes.values() if n.parent == parent}
    name, counter = wanted, 2
    while name in taken:
        name = f"{wanted} ({counter})"
        counter += 1
    return name
