"""A bundle's memory image is imported only onto the stack its manifest records; else disks only.

The memory image here is not a real one (no VM runs): these tests import into an existing project,
so nothing resumes from it; ``test_exchange_memory_vm.py`` resumes a real one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from exchange_helpers import context_at
from test_exchange import sender, served_base  # noqa: F401 (fixtures)

from vmlog.app import exchange, projects
from vmlog.bundles import BaseImageRef, BundleReader, BundleWriter
from vmlog.projects.backends import open_backend
from vmlog.projects.overlay_chain import MEMORY_FILE
from vmlog.workspace import Workspace

MEMORY = b"not really a memory image\n" * 1000


def _stack_here(ctx: Workspace, project: str) -> dict:
    files = ctx.projects.get(project)
    project_ = files.load()
    with open_backend(project_) as backend:
        return {"backend": project_.backend, **backend.memory_stack(files.vm_spec(project_))}


def _bundle_with_memory(ctx: Workspace, tmp_path: Path, memory_info: dict) -> Path:
    """State s1 of ``analysis`` as export_state writes it, with a memory image and ``memory_info``."""
    files = ctx.projects.get("analysis")
    project = files.load()
    state = next(s for s in files.states().values() if s.name == "s1")
    image = ctx.images.find(project.roots["system"].image_sha256)
    memory = tmp_path / "memory.img"
    memory.write_bytes(MEMORY)
    writer = BundleWriter(
        BaseImageRef(image.path, image.qemu_format, image.sha256, image.name, image.version, image.size),
        state={"id": state.id, "name": state.name, "author": state.author, "created": state.created},
        vm_spec=dict(state.spec),
        memory=memory,
        memory_info=memory_info,
        workdir=tmp_path,
    )
    writer.add_disk("system", files.layers.path(state.layers["system"]))
    return writer.write(tmp_path / "s1-with-memory.vmlstate").path


@pytest.fixture
def receiver(sender: Workspace, tmp_path: Path) -> Workspace:  # noqa: F811
    """User B with a project ``mine`` on the same base (imports go there: nothing is restored)."""
    ctx = context_at(tmp_path / "home-b")
    image = sender.images.find(sender.projects.get("analysis").load().roots["system"].image_sha256)
    ctx.images.add_file(image.path, name=image.name, version=image.version, format=image.format)
    projects.new_project("mine", image.sha256, ctx=ctx)
    return ctx


def test_memory_image_on_the_recorded_stack_is_kept(
    sender: Workspace,  # noqa: F811
    receiver: Workspace,
    tmp_path: Path,
) -> None:
    path = _bundle_with_memory(sender, tmp_path, _stack_here(receiver, "mine"))
    result = exchange.import_state(path, project="mine", trust=True, ctx=receiver)
    assert not result.memory_skipped and result.memory_note is None
    files = receiver.projects.get("mine")
    state = files.states()[result.state_id]
    assert state.memory == MEMORY_FILE and state.backend == "kvm"
    assert files.memory_path(state).read_bytes() == MEMORY


@pytest.mark.parametrize(
    ("key", "value"),
    [("qemu", "6.2.0"), ("machine", "pc-q35-5.0"), ("memory_mib", 4096), ("cpus", 8), ("hypervisor", "vbox")],
)
def test_memory_image_of_another_stack_is_refused_and_the_disks_imported(
    sender: Workspace,  # noqa: F811
    receiver: Workspace,
    tmp_path: Path,
    key: str,
    value: object,
) -> None:
    stack = {**_stack_here(receiver, "mine"), key: value}
    path = _bundle_with_memory(sender, tmp_path, stack)
    assert BundleReader(path).verify().manifest["memory"][key] == value
    result = exchange.import_state(path, project="mine", trust=True, ctx=receiver)
    assert result.memory_skipped and f"{key} {value}" in result.memory_note
    files = receiver.projects.get("mine")
    state = files.states()[result.state_id]
    assert state.memory is None and not (files.state_dir(state.id) / MEMORY_FILE).exists()
    assert exchange.state_digest(files, files.load(), state) == exchange.state_digest(
        sender.projects.get("analysis"),
        sender.projects.get("analysis").load(),
        next(s for s in sender.projects.get("analysis").states().values() if s.name == "s1"),
    )


def test_memory_image_without_a_recorded_stack_is_refused(
    sender: Workspace,  # noqa: F811
    receiver: Workspace,
    tmp_path: Path,
) -> None:
    path = _bundle_with_memory(sender, tmp_path, {"backend": "kvm"})
    result = exchange.import_state(path, project="mine", trust=True, ctx=receiver)
    assert result.memory_skipped and "does not record" in result.memory_note


def test_export_records_the_stack_the_backend_reports(sender: Workspace, tmp_path: Path) -> None:  # noqa: F811
    """A state whose memory file the backend cannot read exports a manifest that an importer refuses."""
    files = sender.projects.get("analysis")
    state = next(s for s in files.states().values() if s.name == "s1")
    (files.state_dir(state.id) / MEMORY_FILE).write_bytes(MEMORY)
    files.rewrite_state(dataclasses.replace(state, memory=MEMORY_FILE, backend="kvm"))
    result = exchange.export_state("analysis", "s1", tmp_path, with_memory=True, ctx=sender)
    recorded = BundleReader(result.path).verify().manifest["memory"]
    assert recorded["backend"] == "kvm"
    assert exchange.memory_mismatch(recorded, {}) is not None
