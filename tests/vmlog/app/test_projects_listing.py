"""``vml project list`` with many projects: one backend connection and one listing, not one per project."""

from __future__ import annotations

from pathlib import Path

import pytest

from hypervisors import registry
from hypervisors.base import VMState
from vmlog.app import projects
from vmlog.workspace import Workspace


@pytest.fixture
def ctx(vmlog_home: Path) -> Workspace:
    return Workspace.default()


def test_fifty_projects_ask_the_backend_once(ctx: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = tmp_path / "base.img"
    base.write_bytes(b"\0" * 1024 * 1024)
    names = [f"p{i:02d}" for i in range(50)]
    for name in names:
        projects.new_project(name, str(base), ctx=ctx)
    opened: list[str] = []
    listings: list[list[str]] = []
    real_open = registry.open_backend

    def counting_open(name: str, **options: object):
        opened.append(name)
        backend = real_open(name, **options)
        real_states = backend.vm_states

        def counting_states(vm_names: list[str]) -> dict[str, VMState | None]:
            listings.append(list(vm_names))
            return real_states(vm_names)

        backend.vm_states = counting_states  # type: ignore[method-assign]
        return backend

    monkeypatch.setattr(registry, "open_backend", counting_open)
    rows = projects.list_projects(ctx)
    assert [r.name for r in rows] == names
    assert len(opened) == 1 and len(listings) == 1 and len(listings[0]) == 50
    assert all(r.vm is not None and r.vm.state is VMState.STOPPED for r in rows)
