"""The state tree view draws a real tree: branches fork into lanes, "Now" sits under the current state."""

from __future__ import annotations

from ui.statetree.layout import StateNode, lay_out
from ui.statetree.view import StateTreeView


def node(state_id: str, parent: str | None, t: float, name: str | None = None) -> StateNode:
    return StateNode(state_id, parent, name, t, "anna@lab", f"message of {state_id}", 1024 * int(t))


# root -> a -> b (current) ; a -> c (a branch) ; root -> d (another branch)
TREE = [
    node("root", None, 1, "fresh"),
    node("a", "root", 2, "calibrated"),
    node("b", "a", 3),
    node("c", "a", 4, "try-gcc13"),
    node("d", "root", 5, "old-release"),
]


def test_layout_puts_parents_above_children_and_forks_branches_into_new_lanes() -> None:
    rows = lay_out(TREE, "b", dirty=True)
    order = ["now" if r.is_now else r.node.id for r in rows]
    assert order == ["root", "a", "b", "now", "c", "d"]
    by = {("now" if r.is_now else r.node.id): r for r in rows}
    # first children continue their parent's lane; later children fork to the right
    assert by["a"].lane == by["root"].lane == by["b"].lane == 0
    assert by["root"].down == (0, by["d"].lane) and by["d"].lane > 0
    assert by["c"].lane not in (0, by["d"].lane)
    assert by["now"].lane == by["b"].lane and by["now"].from_above and by["now"].dirty
    assert by["b"].is_current and not by["a"].is_current
    # the line waiting for "d" passes every row between its fork and "d"
    for key in ("a", "b", "now", "c"):
        assert by["d"].lane in by[key].through
    assert [by[k].depth for k in ("root", "a", "b", "now", "c", "d")] == [0, 1, 2, 3, 2, 1]


def test_nothing_saved_yet_shows_only_now() -> None:
    rows = lay_out([], None)
    assert len(rows) == 1 and rows[0].is_now and not rows[0].from_above


def test_a_long_linear_history_stays_in_one_lane() -> None:
    chain = [node(f"s{i}", f"s{i - 1}" if i else None, i) for i in range(3000)]
    rows = lay_out(chain, "s2999")
    assert len(rows) == 3001
    assert {r.lane for r in rows} == {0}


def test_view_rows_show_name_time_author_message_and_layer_size(qtbot) -> None:
    view = StateTreeView()
    qtbot.addWidget(view)
    view.set_states(TREE, "b", dirty=True)
    model = view.model()
    texts = [[model.index(r, c).data() for c in range(5)] for r in range(model.rowCount())]
    assert [t[0] for t in texts] == ["fresh", "calibrated", "b", "Now (unsaved changes)", "try-gcc13", "old-release"]
    assert texts[1][2] == "anna@lab" and texts[1][3] == "message of a" and texts[1][4] == "2.0 KiB"
    assert texts[1][1].count(":") == 1  # a local "YYYY-MM-DD HH:MM"
    assert view.selected_state() == ""  # the "now" node is selected by default
    with qtbot.waitSignal(view.state_selected) as blocker:
        view.select_state("c")
    assert blocker.args == ["c"]
    view.set_states(TREE, "b")  # a refresh keeps the selection
    assert view.selected_state() == "c"
    view.resize(900, 400)
    view.show()
    qtbot.waitExposed(view)
    assert not view.grab().isNull()


def test_a_periodic_read_of_the_same_tree_leaves_the_view_alone(qtbot) -> None:
    from ui.statetree.model import index_rows, layout_key

    view = StateTreeView()
    qtbot.addWidget(view)
    rows = lay_out(TREE, "b")
    view.set_states(TREE, "b", rows=rows, row_of=index_rows(rows), key=layout_key(rows))
    view.select_state("c")
    resets: list[bool] = []
    view.model().modelReset.connect(lambda: resets.append(True))
    again = lay_out(TREE, "b")  # read again: equal rows, new objects
    view.set_states(TREE, "b", rows=again, row_of=index_rows(again), key=layout_key(again))
    assert not resets and view.selected_state() == "c"
    moved = lay_out(TREE, "c")
    view.set_states(TREE, "c", rows=moved, key=layout_key(moved))
    assert resets and view.selected_state() == "c"


def test_names_stay_readable_when_the_graph_has_more_lanes_than_the_column_holds(qtbot) -> None:
    # a fork from every state of a main line: each branch's lane passes every row below its fork
    main = [node(f"m{i}", f"m{i - 1}" if i else None, i, f"main-{i}") for i in range(60)]
    forks = [node(f"f{i}", f"m{i}", 100 + i, f"fork-{i}") for i in range(59)]
    view = StateTreeView()
    qtbot.addWidget(view)
    view.resize(900, 400)
    view.set_states(main + forks, "m59")
    assert view.graph.graph_lanes > 40
    width = view.columnWidth(0)
    assert view.graph.lanes_shown(width) * 18 + 10 < width - 100  # room for the name
    view.show()
    qtbot.waitExposed(view)
    view.grab()  # paints every visible row without error
