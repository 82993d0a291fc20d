"""VMware's snapshot tree, read from the VM's ``.vmsd`` file, and the ``a/b/c`` names ``vmrun`` takes.

``.vmsd`` (same dictionary format as ``.vmx``, keys case-insensitive) holds ``snapshot.current``,
``snapshot.lastUID`` and, per node, ``snapshotN.uid``, ``.displayName``, ``.parent`` (a uid),
``.filename`` (the node's ``.vmsn`` checkpoint file), ``.type``, and per disk it froze
``.diskM.fileName`` (the delta VMDK, frozen from then on) and ``.diskM.node`` (the ``.vmx`` device
it belongs to, ``scsi0:0``). A snapshot holds the memory when a ``.vmem`` sits beside its ``.vmsn``
(``vm-Snapshot3.vmsn`` + ``vm-Snapshot3.vmem``); VMware writes no ``vmState`` key there. ``vmrun``
names snapshots by display name or by path of names from the root (``a/b/c``); two siblings with the
same name make that path ambiguous, which is why vmlog keeps sibling names unique.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from hypervisors.vmware import vmx

_NODE_RE = re.compile(r"^snapshot(\d+)\.uid$", re.IGNORECASE)


@dataclass(frozen=True)
class SnapshotNode:
    uid: str
    name: str
    parent: str | None
    disks: tuple[str, ...]
    memory_file: str | None  # the .vmem beside the node's .vmsn, when the snapshot holds the memory
    disk_nodes: tuple[tuple[str, str], ...] = ()  # (device node, frozen file name) of each disk
    checkpoint_file: str | None = None  # the node's .vmsn (``snapshotN.filename``)
    kind: str = ""  # ``snapshotN.type`` as written


def read_tree(vmsd_path: Path) -> tuple[dict[str, SnapshotNode], str | None]:
    values = vmx.read(vmsd_path)
    nodes: dict[str, SnapshotNode] = {}
    for key, uid in values.items():
        match = _NODE_RE.match(key)
        if not match:
            continue
        prefix = f"snapshot{match.group(1)}"
        file_keys = sorted(k for k in values if re.fullmatch(rf"{prefix}\.disk\d+\.filename", k, re.IGNORECASE))
        disk_nodes = tuple(
            (values[k[: -len(".fileName")] + ".node"], values[k])
            for k in file_keys if k[: -len(".fileName")] + ".node" in values
        )
        checkpoint = values.get(f"{prefix}.filename") or None
        nodes[uid] = SnapshotNode(uid=uid, name=values.get(f"{prefix}.displayName") or "",
                                  parent=values.get(f"{prefix}.parent") or None,
                                  disks=tuple(values[k] for k in file_keys),
                                  memory_file=memory_beside(Path(vmsd_path).parent, checkpoint),
                                  disk_nodes=disk_nodes, checkpoint_file=checkpoint,
                                  kind=values.get(f"{prefix}.type") or "")
    current = values.get("snapshot.current") or None
    return nodes, current if current in nodes else None


def memory_beside(folder: Path, checkpoint: str | None) -> str | None:
    """The ``.vmem`` next to a snapshot's ``.vmsn`` (relative like it), if VMware wrote one."""
    if not checkpoint:
        return None
    memory = str(Path(checkpoint).with_suffix(".vmem"))
    return memory if (folder / memory).exists() else None


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
