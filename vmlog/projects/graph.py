"""Drawing the state tree like ``git log --graph``: newest first, one lane per open branch.

Nodes are emitted children-before-parent with each subtree contiguous (newest branch first), so
the lanes that wait for one parent are always adjacent at the right end and merge with ``|/``.
"""

from __future__ import annotations

from collections.abc import Callable

from vmlog.projects.model import State


def _order(states: dict[str, State]) -> list[State]:
    kids: dict[str | None, list[State]] = {}
    for state in states.values():
        parent = state.parent if state.parent in states else None
        kids.setdefault(parent, []).append(state)
    newest: dict[str, float] = {}

    def newest_in(state: State) -> float:
        if state.id not in newest:
            newest[state.id] = max([state.created, *(newest_in(c) for c in kids.get(state.id, []))])
        return newest[state.id]

    order: list[State] = []

    def emit(state: State) -> None:
        # iterative deepening would avoid recursion limits; trees of states stay far below them
        for child in sorted(kids.get(state.id, []), key=lambda c: (newest_in(c), c.id), reverse=True):
            emit(child)
        order.append(state)

    for root in sorted(kids.get(None, []), key=lambda r: (newest_in(r), r.id), reverse=True):
        emit(root)
    return order


def draw(
    states: dict[str, State],
    current: str | None,
    describe: Callable[[State], str] | None = None,
    *,
    live_dirty: bool = False,
) -> list[str]:
    """Lines of the tree; the current state is drawn ``@`` and, if the live layer has changes, a
    ``+ (unsaved changes)`` row sits above it."""
    describe = describe or (lambda s: s.label())
    lanes: list[str | None] = []
    lines: list[str] = []
    for state in _order(states):
        waiting = [i for i, want in enumerate(lanes) if want == state.id]
        if state.id == current and live_dirty:
            # the live layer is a child of the current state: give it a lane of its own
            lanes.append(state.id)
            lines.append(_row(lanes, len(lanes) - 1, "+") + " (unsaved changes)")
            waiting.append(len(lanes) - 1)
        if not waiting:
            lanes.append(state.id)
            waiting = [len(lanes) - 1]
        col = waiting[0]
        for extra in reversed(waiting[1:]):
            lines.append(_merge_row(lanes, col, extra))
            lanes[extra] = None
            while lanes and lanes[-1] is None:
                lanes.pop()
        mark = "@" if state.id == current else "*"
        lines.append(_row(lanes, col, mark) + " " + describe(state))
        parent = state.parent if state.parent in states else None
        lanes[col] = parent
        while lanes and lanes[-1] is None:
            lanes.pop()
    return lines


def _row(lanes: list[str | None], col: int, mark: str) -> str:
    cells = [mark if i == col else ("|" if want is not None else " ") for i, want in enumerate(lanes)]
    return " ".join(cells).rstrip()


def _merge_row(lanes: list[str | None], col: int, extra: int) -> str:
    """One lane (``extra``) joining the lane at ``col`` on the left: ``| |/``."""
    cells = []
    for i, want in enumerate(lanes[:extra]):
        cells.append("|" if want is not None or i == col else " ")
    return " ".join(cells) + "/"
