"""State references and the tree drawing: what `vml state restore REF` and `vml state tree` rely on."""

from __future__ import annotations

import pytest

from vmlog.errors import InvalidInput, NotFound
from vmlog.projects import graph, refs
from vmlog.projects.model import State


def _state(sid: str, parent: str | None, name: str | None, created: float) -> State:
    return State(
        id=sid,
        parent=parent,
        name=name,
        message="",
        author="u@h",
        created=created,
        layers={"system": f"system-{sid}.qcow2"},
        spec={},
    )


@pytest.fixture
def tree() -> dict[str, State]:
    # a1 -> b2 -> c3 ; a1 -> d4 (branch) ; d4 -> e5
    states = [
        _state("a1aa0000", None, "base", 1),
        _state("b2bb0000", "a1aa0000", "calib", 2),
        _state("c3cc0000", "b2bb0000", None, 3),
        _state("d4dd0000", "a1aa0000", "rebase", 4),
        _state("e5ee0000", "d4dd0000", "fit", 5),
    ]
    return {s.id: s for s in states}


def test_resolve_forms(tree: dict[str, State]) -> None:
    assert refs.resolve(tree, "c3cc0000", "HEAD").id == "c3cc0000"
    assert refs.resolve(tree, "c3cc0000", "HEAD~").id == "b2bb0000"
    assert refs.resolve(tree, "c3cc0000", "HEAD~2").id == "a1aa0000"
    assert refs.resolve(tree, None, "fit~1").id == "d4dd0000"
    assert refs.resolve(tree, None, "calib").id == "b2bb0000"
    assert refs.resolve(tree, None, "e5ee").id == "e5ee0000"
    assert refs.resolve(tree, None, "d4dd0000").id == "d4dd0000"


def test_resolve_errors(tree: dict[str, State]) -> None:
    with pytest.raises(NotFound):
        refs.resolve(tree, "c3cc0000", "HEAD~3")
    with pytest.raises(NotFound):
        refs.resolve(tree, None, "HEAD")
    with pytest.raises(NotFound):
        refs.resolve(tree, None, "nope")
    with pytest.raises(NotFound):
        refs.resolve(tree, None, "a1")  # too short a prefix to guess
    tree["a1aa1111"] = _state("a1aa1111", None, None, 6)
    with pytest.raises(InvalidInput) as caught:
        refs.resolve(tree, None, "a1aa")
    assert "ambiguous" in caught.value.message
    assert refs.resolve(tree, None, "a1aa1").id == "a1aa1111"


def test_children_and_ancestors(tree: dict[str, State]) -> None:
    assert [s.id for s in refs.children(tree, "a1aa0000")] == ["b2bb0000", "d4dd0000"]
    assert refs.ancestors(tree, "e5ee0000") == ["e5ee0000", "d4dd0000", "a1aa0000"]


def test_draw_branches(tree: dict[str, State]) -> None:
    lines = graph.draw(tree, "c3cc0000", lambda s: s.name or s.id[:4])
    assert lines == [
        "* fit",
        "* rebase",
        "| @ c3cc",
        "| * calib",
        "|/",
        "* base",
    ]


def test_draw_live_changes_and_three_children() -> None:
    states = {
        s.id: s
        for s in [
            _state("r", None, "root", 1),
            _state("x", "r", "x", 2),
            _state("y", "r", "y", 3),
        ]
    }
    lines = graph.draw(states, "r", lambda s: s.name or s.id, live_dirty=True)
    assert lines == [
        "* y",
        "| * x",
        "| | + (unsaved changes)",
        "| |/",
        "|/",
        "@ root",
    ]


def test_draw_linear() -> None:
    states = {s.id: s for s in [_state("a", None, "a", 1), _state("b", "a", "b", 2)]}
    assert graph.draw(states, "b", lambda s: s.id) == ["@ b", "* a"]
