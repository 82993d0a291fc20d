"""Placing the states of a project on lanes, oldest on top, so the view can draw branch lines.

The view works from plain :class:`StateNode` records (what the project service reports), so it
can show any tree, including the 5,000-state benchmark, without touching disks. Rows come out in
depth-first order with each subtree contiguous: a state's first child continues its lane straight
down, later children fork into lanes to the right. The "now" node (the live layer, where unsaved
work goes) is the current state's first child, so it always sits right under the state it grew from.
"""

from __future__ import annotations

from dataclasses import dataclass

NOW_ID = ""  # the id of the pseudo node that stands for the live layer


@dataclass(frozen=True, slots=True)  # slots: 5,000 of them are 5,000 objects for the collector, not 10,000
class StateNode:
    """One saved state as the tree shows it."""

    id: str
    parent: str | None
    name: str | None
    created: float
    author: str
    message: str
    layer_bytes: int | None = None  # size of the state's own frozen layers; None while unknown
    memory: bool = False  # the state holds the running machine's memory: restoring it resumes the VM


@dataclass(frozen=True, slots=True)
class TreeRow:
    """One row of the drawn tree: the node and the lines around it."""

    node: StateNode | None  # None for the "now" row
    lane: int  # column of the node's dot
    through: tuple[int, ...]  # lanes whose line passes this row top to bottom
    from_above: bool  # a line comes down into the dot from the parent
    down: tuple[int, ...]  # lanes the dot sends lines down into (children)
    depth: int  # number of ancestors, for "row N is a child of row M" checks
    is_current: bool = False  # the state the live layer sits on
    dirty: bool = False  # (now row) the live layer holds unsaved changes

    @property
    def is_now(self) -> bool:
        return self.node is None

    @property
    def lanes(self) -> int:
        return 1 + max((self.lane, *self.through, *self.down))


def lay_out(nodes: list[StateNode], current: str | None, *, dirty: bool = False) -> list[TreeRow]:
    """Rows in drawing order; ``current`` is the state the live layer sits on (None: on the base)."""
    by_id = {node.id: node for node in nodes}
    kids: dict[str | None, list[str]] = {}
    for node in sorted(nodes, key=lambda n: (n.created, n.id)):
        parent = node.parent if node.parent in by_id else None
        kids.setdefault(parent, []).append(node.id)
    # the live layer is the first child of the state it sits on (or a root when nothing is saved)
    kids.setdefault(current if current in by_id else None, []).insert(0, NOW_ID)

    rows: list[TreeRow] = []
    lanes: list[str | None] = []  # per lane: the node id the line is flowing down to

    def claim(node_id: str) -> int:
        for index, want in enumerate(lanes):
            if want is None:
                lanes[index] = node_id
                return index
        lanes.append(node_id)
        return len(lanes) - 1

    # explicit stack instead of recursion: a linear history of 5,000 states is 5,000 levels deep
    stack: list[tuple[str, int, bool]] = [(root, 0, False) for root in reversed(kids.get(None, []))]
    while stack:
        node_id, depth, has_parent = stack.pop()
        if node_id in lanes:
            lane = lanes.index(node_id)
        else:
            lane = claim(node_id)
        children = kids.get(node_id, [])
        down: list[int] = []
        if children:
            lanes[lane] = children[0]
            down.append(lane)
            for child in children[1:]:
                down.append(claim(child))
        else:
            lanes[lane] = None
        through = tuple(
            i for i, want in enumerate(lanes) if want is not None and i != lane and i not in down[1:]
        )
        node = by_id.get(node_id)
        rows.append(
            TreeRow(
                node=node,
                lane=lane,
                through=through,
                from_above=has_parent,
                down=tuple(down),
                depth=depth,
                is_current=node is not None and node.id == current,
                dirty=node is None and dirty,
            )
        )
        while lanes and lanes[-1] is None:
            lanes.pop()
        for child in reversed(children):
            stack.append((child, depth + 1, True))
    return rows
