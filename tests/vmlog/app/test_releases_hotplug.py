"""A release shared into a running VM goes through the backend's shared-folder hot-plug, and a refusal is explained."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest

from hypervisors.base import Capability, VMState
from hypervisors.errors import OperationFailed
from hypervisors.spec import SharedFolder
from vmlog.app import releases as app_releases
from vmlog.projects.releases import ProjectRelease, ReleaseOutcome, hotplug_share
from vmlog.releases.model import Release

REFUSAL = "libvirt cannot attach shared folder 'rel-24.0.3' to the running VM 'vml-ana': unsupported configuration"


class HotplugBackend:
    """A backend that records the shares it was asked to add or remove, or refuses them."""

    name = "kvm"

    def __init__(self, *, hotplug: bool = True, refuse: bool = False) -> None:
        self.capabilities = Capability.SHARED_FOLDER_HOTPLUG if hotplug else Capability(0)
        self.refuse = refuse
        self.calls: list[tuple[str, str, SharedFolder]] = []
        self.stopped: list[str] = []

    def can(self, capability: Capability) -> bool:
        return capability in self.capabilities

    def attach_shared_folder(self, vm_name: str, folder: SharedFolder) -> None:
        if self.refuse:
            raise OperationFailed(REFUSAL, backend=self.name)
        self.calls.append(("attach", vm_name, folder))

    def detach_shared_folder(self, vm_name: str, folder: SharedFolder) -> None:
        self.calls.append(("detach", vm_name, folder))

    def shutdown(self, vm_name: str) -> None:
        self.stopped.append(vm_name)


def release_item() -> ProjectRelease:
    release = Release("24.0.3", 7, "prod-2024", "http://h/cvmfs/sw", "sw/software/24.0/24.0.3", "ab" * 20)
    return ProjectRelease("24.0.3", release, {"kind": "cvmfs", "url": "http://h/cvmfs/sw"})


def test_hotplug_uses_the_backend_contract(tmp_path: Path) -> None:
    backend = HotplugBackend()
    folder = SharedFolder("rel-24.0.3", tmp_path, True)
    assert hotplug_share(backend, "vml-ana", folder, attach=True) is None  # type: ignore[arg-type]
    assert hotplug_share(backend, "vml-ana", folder, attach=False) is None  # type: ignore[arg-type]
    assert backend.calls == [("attach", "vml-ana", folder), ("detach", "vml-ana", folder)]


def test_hotplug_says_why_not() -> None:
    folder = SharedFolder("rel-24.0.3", Path("/x"), True)
    assert hotplug_share(HotplugBackend(refuse=True), "vml-ana", folder, attach=True) == REFUSAL  # type: ignore[arg-type]
    why = hotplug_share(HotplugBackend(hotplug=False), "vml-ana", folder, attach=True)  # type: ignore[arg-type]
    assert why == "the kvm backend cannot change the shared folders of a running VM"


@pytest.fixture
def running_vm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[HotplugBackend]:
    backend = HotplugBackend(refuse=True)

    @contextmanager
    def open_backend(_project: object) -> Iterator[HotplugBackend]:
        yield backend

    monkeypatch.setattr(app_releases, "open_backend", open_backend)
    monkeypatch.setattr(app_releases, "vm_state", lambda _backend, _vm: VMState.RUNNING)
    monkeypatch.setattr(app_releases, "host_mountpoints", lambda _project: {"24.0.3": tmp_path})
    yield backend


def test_a_refused_share_is_explained_with_the_commands_that_share_it(running_vm: HotplugBackend) -> None:
    project = SimpleNamespace(name="ana", vm_name="vml-ana")
    outcome = ReleaseOutcome()
    app_releases._share_into_running_vm(None, project, release_item(), restart=False, outcome=outcome)  # type: ignore[arg-type]
    assert outcome.guest == "next boot"
    (warning,) = outcome.warnings
    assert REFUSAL in warning
    assert "`vml down ana` then `vml up ana`" in warning and "--restart" in warning
    assert running_vm.stopped == []  # without --restart the running VM is left alone
