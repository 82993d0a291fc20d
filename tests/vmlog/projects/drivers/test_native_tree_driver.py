"""The state-driver suite on native snapshot trees: VirtualBox and VMware, through their simulators."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from simulators.disk_files import content_format
from simulators.fixtures import simulated_tools  # noqa: F401 - fixture

from hypervisors import qemu_img
from vmlog.projects.backends import open_backend
from vmlog.projects.native_tree import NativeTree
from vmlog.projects.store import ProjectFiles
from vmlog.workspace import Workspace

from .abstract import AbstractDriverTests, DriverEnv


@contextmanager
def _driver(files: ProjectFiles) -> Iterator[NativeTree]:
    with open_backend(files.load()) as hv:
        yield NativeTree(hv)


def _top(files: ProjectFiles) -> Path:
    """The file the hypervisor writes the system disk into now (the VM is defined if it is not yet)."""
    with _driver(files) as driver:
        driver.ensure_vm(files)
        return Path(driver.backend.disk_tops(files.load().vm_name)["system"])


def _write(files: ProjectFiles, pattern: int, offset: int) -> None:
    path = _top(files)
    subprocess.run(["qemu-io", "-f", content_format(path), "-c", f"write -P {pattern} {offset} 65536", str(path)],
                   check=True, capture_output=True)


def _view(files: ProjectFiles, tmp: Path) -> bytes:
    path = _top(files)
    flat = qemu_img.convert(path, tmp / "view.raw", src_format=content_format(path), dest_format="raw")
    try:
        return flat.read_bytes()
    finally:
        flat.unlink()


def _options(backend: str, sim: Path) -> dict[str, str]:
    return {"machine_folder": str(sim / "machines")} if backend == "virtualbox" else {"vm_root": str(sim / "vms")}


class TestNativeTree(AbstractDriverTests):
    @pytest.fixture(params=["virtualbox", "vmware"])
    def env(self, request, ctx: Workspace, base_image: Path, simulated_tools: Path) -> Iterator[DriverEnv]:  # noqa: F811
        env = DriverEnv(ctx, request.param, _options(request.param, simulated_tools), _driver, _write, _view)
        env.new_project("p", str(base_image))
        yield env
