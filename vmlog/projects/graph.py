"""Drawing the state tree like ``git log --graph``: newest first, one lane per open branch.

Nodes are emitted children-before-parent with each subtree contiguous (newest branch first), so
the lanes that wait for one parent are always adjacent at the right end and merge with ``|/``.
"""

from __future__ import annotations

from collections.abc import Callable

from vmlog.projects.model import State


def _order(states: dict[str, State]) -> list[State]:
    """Children before parents, each subtree contiguous, newest subtree first; loops, never recursion.

    A line of thousands of states is as deep as it is long, so both passes keep their own stack.
    """
    kids: dict[str | None, list[State]] = {}
    for state in states.values():
        parent = state.parent if state.parent in states else None
        kids.setdefault(parent, []).append(state)
    newest = _newest_in_subtrees(states, kids)
    no_kids: list[State] = []

    def oldest_first(group: list[State]) -> list[State]:  # pop() then takes the newest subtree
        if len(group) < 2:  # most states have one child: nothing to sort
            return list(group)
        return sorted(group, key=lambda s: (newest[s.id], s.id))

    order: list[State] = []
    # each entry: a state and the children still to emit (newest last)
    stack: list[tuple[State, list[State]]] = []
    for root in reversed(oldest_first(kids.get(None, no_kids))):
        stack.append((root, oldest_first(kids.get(root.id, no_kids))))
        while stack:
            state, pending = stack[-1]
            if pending:
                child = pending.pop()
                stack.append((child, oldest_first(kids.get(child.id, no_kids))))
                continue
            stack.pop()
            order.append(state)
    return order


def _newest_in_subtrees(states: dict[str, State], kids: dict[str | None, list[State]]) -> dict[str, float]:
    """The newest creation time in each state's subtree, children worked out before their parents."""
    newest: dict[str, float] = {}
    post: list[State] = []
    stack = list(kids.get(None, []))
    while stack:
        state = stack.pop()
        post.append(state)
        stack.extend(kids.get(state.id, ()))
    for state in reversed(post):  # a pre-order reversed puts every child before its parent
        value = state.created
        for child in kids.get(state.id, ()):
            if newest[child.id] > value:
                value = newest[child.id]
        newest[state.id] = value
    return newest


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
