"""The state-driver suite on the overlay chain: vmlog's own qcow2 layers, no hypervisor (the VM is never defined)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import pytest
from chain_helpers import snapshot_raw, write_pattern

from vmlog.projects.driver import StateDriver
from vmlog.projects.overlay_chain import OverlayChain
from vmlog.projects.store import ProjectFiles
from vmlog.workspace import Workspace

from .abstract import AbstractDriverTests, DriverEnv


def _driver(files: ProjectFiles) -> AbstractContextManager[StateDriver]:
    return nullcontext(OverlayChain(None))


def _live(files: ProjectFiles) -> Path:
    return files.layers.path(files.load().live["system"])


def _write(files: ProjectFiles, pattern: int, offset: int) -> None:
    write_pattern(_live(files), pattern, offset)


def _view(files: ProjectFiles, tmp: Path) -> bytes:
    flat = snapshot_raw(_live(files), tmp / "view.raw")
    try:
        return flat.read_bytes()
    finally:
        flat.unlink()


class TestOverlayChain(AbstractDriverTests):
    @pytest.fixture
    def env(self, ctx: Workspace, base_image: Path) -> Iterator[DriverEnv]:
        env = DriverEnv(ctx, "kvm", {"uri": "test:///default"}, _driver, _write, _view)  # no daemon needed
        env.new_project("p", str(base_image))
        yield env
