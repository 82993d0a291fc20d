"""The light listings give what the full use cases give: the quick CLI path prints the same projects and states."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmlog.app import listings, projects, states
from vmlog.errors import NotFound
from vmlog.workspace import Workspace


def test_projects_and_states_as_the_use_cases_list_them(vmlog_home: Path, tmp_path: Path) -> None:
    image = tmp_path / "appliance.img"
    image.write_bytes(b"\0" * (1 << 20))
    projects.new_project("one", str(image))
    projects.new_project("two", str(image), scratch_size="1M")
    states.save_state("one", name="a")
    states.save_state("one", name="b")
    for ctx in (None, Workspace.default()):
        assert [r.to_dict() for r in listings.list_projects(ctx)] == [r.to_dict() for r in projects.list_projects(ctx)]
        quick = listings.list_projects(ctx, with_vm_state=False)
        assert [r.to_dict() for r in quick] == [r.to_dict() for r in projects.list_projects(ctx, with_vm_state=False)]
        project, found = listings.project_states("one", ctx=ctx)
        full_project, full_states = states.states("one", ctx=ctx)
        assert project == full_project
        assert {k: v.to_dict() for k, v in found.items()} == {k: v.to_dict() for k, v in full_states.items()}
        for name in ("one", "two"):
            assert listings.state_tree(name, ctx=ctx) == states.state_tree(name, ctx=ctx)
    assert listings.project_states()[0].name == "two"  # the current project
    assert listings.list_projects()[1].current


def test_no_current_project_is_the_same_error(vmlog_home: Path) -> None:
    with pytest.raises(NotFound) as quick:
        listings.project_states()
    with pytest.raises(NotFound) as full:
        states.states()
    assert (quick.value.message, quick.value.fix) == (full.value.message, full.value.fix)
