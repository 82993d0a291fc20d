"""Tests every StateDriver must pass, written once; a module per snapshot model supplies the ``env`` fixture.

The pattern is fsspec's abstract test suite: the base class holds the tests, a subclass per
implementation overrides the fixture that builds a project on it. The VM stays off in every test:
the environment writes into the disk the hypervisor would write as a guest does, and reads back
what the guest would see.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from vmlog.app import exchange, projects
from vmlog.errors import AlreadyExists
from vmlog.projects.driver import StateDriver
from vmlog.projects.store import ProjectFiles
from vmlog.workspace import Workspace

MiB = 1024 * 1024


@dataclass
class DriverEnv:
    """A project ``p`` on one snapshot model, and how a test drives and observes it."""

    ctx: Workspace
    backend: str
    backend_options: dict[str, Any]
    open_driver: Callable[[ProjectFiles], AbstractContextManager[StateDriver]]
    guest_write: Callable[[ProjectFiles, int, int], None]  # (files, pattern byte, offset): 64 KiB as a guest writes
    guest_view: Callable[[ProjectFiles, Path], bytes]  # what the guest sees on the system disk now

    @property
    def files(self) -> ProjectFiles:
        return self.ctx.projects.get("p")

    def new_project(self, name: str, image: str, **kw: Any) -> ProjectFiles:
        projects.new_project(name, image, backend=self.backend, backend_options=self.backend_options,
                             memory_mib=256, ctx=self.ctx, **kw)
        return self.ctx.projects.get(name)

    def save(self, name: str | None, files: ProjectFiles | None = None) -> str:
        files = files or self.files
        with self.open_driver(files) as driver:
            return driver.save(files, name=name, message=f"msg {name}", author="u@h", memory=False).id


class DriverFixtures:
    """The fixtures a driver's test module overrides."""

    @pytest.fixture
    def env(self) -> Iterator[DriverEnv]:
        raise NotImplementedError("a driver's test class provides the env fixture")


class AbstractDriverTests(DriverFixtures):
    def test_create_disks_names_the_published_paths(self, env: DriverEnv, base_image: Path) -> None:
        files = env.new_project("scratchy", str(base_image), scratch_size="2M")
        project = files.load()
        assert {d["label"] for d in project.spec["disks"]} == {"system", "scratch"}
        for disk in project.spec["disks"]:
            assert Path(disk["path"]).exists(), disk
            assert ".new-" not in disk["path"]
        for disk in files.vm_spec(project).disks:
            assert Path(disk.path).exists(), disk
        with env.open_driver(files) as driver:
            assert not driver.live_has_changes(files)
        sid = env.save("one", files)
        for disk in files.states()[sid].spec["disks"]:
            assert Path(disk["path"]).exists(), disk

    def test_live_has_changes_follows_guest_writes_and_saves(self, env: DriverEnv) -> None:
        files = env.files
        with env.open_driver(files) as driver:
            assert not driver.live_has_changes(files)
        env.guest_write(files, 0x42, MiB)
        with env.open_driver(files) as driver:
            assert driver.live_has_changes(files)
        env.save("one")
        with env.open_driver(files) as driver:
            assert not driver.live_has_changes(files)

    def test_save_refuses_a_taken_name(self, env: DriverEnv) -> None:
        env.save("one")
        with pytest.raises(AlreadyExists):
            env.save("one")

    def test_restore_shows_what_each_state_saved(self, env: DriverEnv, tmp_path: Path) -> None:
        files = env.files
        seen: dict[str, bytes] = {}
        for i in (1, 2):
            env.guest_write(files, 0x30 + i, i * MiB)
            sid = env.save(f"s{i}")
            seen[sid] = env.guest_view(files, tmp_path)
            assert files.load().current == sid
        assert seen[sid][2 * MiB] == 0x32
        first, second = list(seen)
        assert files.states()[second].parent == first
        with env.open_driver(files) as driver:
            driver.restore(files, files.states()[first])
        assert files.load().current == first
        assert env.guest_view(files, tmp_path) == seen[first]
        with env.open_driver(files) as driver:
            driver.restore(files, files.states()[second])
        assert env.guest_view(files, tmp_path) == seen[second]

    def test_remove_keeps_the_other_states(self, env: DriverEnv, tmp_path: Path) -> None:
        files = env.files
        env.guest_write(files, 0x51, MiB)
        first = env.save("s1")
        env.guest_write(files, 0x52, 2 * MiB)
        second = env.save("s2")
        expected = env.guest_view(files, tmp_path)
        with env.open_driver(files) as driver:
            driver.remove(files, files.states()[first])
        states = files.states()
        assert set(states) == {second} and states[second].parent is None
        assert env.guest_view(files, tmp_path) == expected
        with env.open_driver(files) as driver:
            driver.restore(files, states[second])
        assert env.guest_view(files, tmp_path) == expected

    def test_export_import_round_trip(self, env: DriverEnv, tmp_path: Path) -> None:
        files = env.files
        env.guest_write(files, 0x61, MiB)
        env.save("s1")
        full_view = env.guest_view(files, tmp_path)
        env.guest_write(files, 0x62, 2 * MiB)
        env.save("s2")
        incremental_view = env.guest_view(files, tmp_path)
        full = exchange.export_state("p", "s1", tmp_path, ctx=env.ctx)
        incremental = exchange.export_state("p", "s2", tmp_path, since="s1", ctx=env.ctx)
        about = exchange.inspect_bundle(incremental.path, ctx=env.ctx)
        assert about.since is not None and about.since["state_id"] == full.state_id
        assert [d["label"] for d in about.disks] == ["system"] and about.base_in_store
        assert json.loads(json.dumps(about.to_dict()))["signer"]["fingerprint"] == incremental.signer_fingerprint

        result = exchange.import_state(full.path, project="q", trust=True, backend=env.backend,
                                       backend_options=env.backend_options, ctx=env.ctx)
        received = env.ctx.projects.get("q")
        assert result.new_project and received.load().current == result.state_id
        assert env.guest_view(received, tmp_path) == full_view
        result = exchange.import_state(incremental.path, project="q", trust=True, ctx=env.ctx)
        assert result.project == "q" and received.states()[result.state_id].parent == full.state_id
        if received.load().current != result.state_id:  # an overlay chain records it; restoring is the user's
            with env.open_driver(received) as driver:
                driver.restore(received, received.states()[result.state_id])
        assert env.guest_view(received, tmp_path) == incremental_view
        with env.open_driver(received) as driver:
            assert driver.exchanged_labels(received.load()) == ["system"]
