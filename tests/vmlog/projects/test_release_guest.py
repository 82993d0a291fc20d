"""Releases in a running guest through its agent: mounted and checked, kept in fstab, unmounted before detaching."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest

from hypervisors.base import Capability, VMState
from hypervisors.guest import ExecResult, GuestAgent
from hypervisors.spec import SharedFolder
from vmlog.app import releases as app_releases
from vmlog.errors import Busy
from vmlog.projects import release_guest
from vmlog.projects.release_records import ProjectRelease, ReleaseOutcome
from vmlog.releases.model import Release

ITEM = ProjectRelease(
    "24.0.3", Release("24.0.3", 7, "prod", "http://h/cvmfs/sw", "sw/software/24.0/24.0.3", "ab" * 20),
    {"kind": "cvmfs", "url": "http://h/cvmfs/sw"},
)  # fmt: skip


class RecordingAgent(GuestAgent):
    """A guest that records the shell commands it gets; mounts succeed unless ``mounts``/``busy`` say otherwise."""

    kind = "fake"

    def __init__(self, *, root: bool = True, mounts: bool = True, busy: bool = False) -> None:
        self.runs_as_root = root  # type: ignore[misc]
        self.mounts, self.busy = mounts, busy
        self.commands: list[str] = []

    def ping(self, timeout: float = 5.0) -> None:
        return None

    def exec(self, argv: Sequence[str], *, timeout: float = 60.0, stdin: bytes | None = None) -> ExecResult:
        command = argv[-1]
        self.commands.append(command)
        if "/proc/mounts" in command and not self.mounts:
            return ExecResult(1)
        if "umount" in command and self.busy:
            return ExecResult(32, stderr=b"umount: /cvmfs-releases/24.0.3: target is busy.\n")
        return ExecResult(0)


@pytest.fixture
def guest(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingAgent]:
    """A running real guest (the platform's agent) whose agent is a :class:`RecordingAgent`."""
    agent = RecordingAgent()

    @contextmanager
    def open_backend(_project: object) -> Iterator[None]:
        yield None

    monkeypatch.setattr(release_guest, "open_backend", open_backend)
    monkeypatch.setattr(release_guest, "open_guest", lambda *_args: agent)
    facts = {"context": "nocloud", "agent": True, "agent_kind": "standard"}
    monkeypatch.setattr(release_guest, "guest_facts", lambda _files, _project: facts)
    monkeypatch.setattr(app_releases, "guest_facts", lambda _files, _project: facts)
    yield agent


PROJECT = SimpleNamespace(name="ana", vm_name="vml-ana", spec={})


def test_mount_in_the_guest_is_checked_and_kept_in_fstab(guest: RecordingAgent) -> None:
    assert release_guest.mount_in_guest(None, PROJECT, ITEM, timeout=5) is None  # type: ignore[arg-type]
    mount, fstab, check = guest.commands
    assert "mount -t virtiofs -o ro rel-24.0.3 /cvmfs-releases/24.0.3" in mount
    assert "rel-24.0.3 /cvmfs-releases/24.0.3 virtiofs ro,nofail 0 0" in fstab and ">> /etc/fstab" in fstab
    assert check == "grep -qF 'rel-24.0.3 /cvmfs-releases/24.0.3 virtiofs ' /proc/mounts"


def test_a_mount_the_guest_does_not_show_is_not_called_mounted(guest: RecordingAgent) -> None:
    guest.mounts = False
    why = release_guest.mount_in_guest(None, PROJECT, ITEM, timeout=5)  # type: ignore[arg-type]
    assert why == "the guest's /proc/mounts does not show rel-24.0.3 mounted at /cvmfs-releases/24.0.3"


def test_an_agent_that_is_not_root_goes_through_sudo(guest: RecordingAgent) -> None:
    guest.runs_as_root = False  # type: ignore[misc]
    release_guest.mount_in_guest(None, PROJECT, ITEM, timeout=5)  # type: ignore[arg-type]
    assert guest.commands and all(c.startswith("sudo -n sh -c ") for c in guest.commands)


def test_a_busy_release_is_not_detached_and_the_fix_says_what_to_do(guest: RecordingAgent) -> None:
    guest.busy = True
    with pytest.raises(Busy) as caught:
        release_guest.umount_in_guest(None, PROJECT, ITEM)  # type: ignore[arg-type]
    assert "target is busy" in caught.value.message
    assert "fuser -vm /cvmfs-releases/24.0.3" in caught.value.fix
    assert "`vml release umount 24.0.3 --project ana`" in caught.value.fix and "`vml down ana`" in caught.value.fix
    assert len(guest.commands) == 1  # the fstab line stays while the release is mounted


def test_umount_takes_the_fstab_line_out(guest: RecordingAgent) -> None:
    release_guest.umount_in_guest(None, PROJECT, ITEM)  # type: ignore[arg-type]
    umount, fstab = guest.commands
    assert umount == "! mountpoint -q /cvmfs-releases/24.0.3 || umount /cvmfs-releases/24.0.3"
    assert "grep -vF 'rel-24.0.3 /cvmfs-releases/24.0.3 '" in fstab


class ShareBackend:
    name = "kvm"
    capabilities = Capability.SHARED_FOLDER_HOTPLUG

    def __init__(self) -> None:
        self.calls: list[str] = []

    def can(self, capability: Capability) -> bool:
        return capability in self.capabilities

    def attach_shared_folder(self, vm_name: str, folder: SharedFolder) -> None:
        self.calls.append("attach")


@pytest.fixture
def running(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ShareBackend:
    backend = ShareBackend()

    @contextmanager
    def open_backend(_project: object) -> Iterator[ShareBackend]:
        yield backend

    monkeypatch.setattr(app_releases, "open_backend", open_backend)
    monkeypatch.setattr(app_releases, "vm_state", lambda _backend, _vm: VMState.RUNNING)
    monkeypatch.setattr(app_releases, "host_mountpoints", lambda _project: {"24.0.3": tmp_path})
    return backend


def test_mount_says_mounted_in_the_guest_only_once_checked(guest: RecordingAgent, running: ShareBackend) -> None:
    outcome = ReleaseOutcome()
    app_releases._share_into_running_vm(None, PROJECT, ITEM, restart=False, outcome=outcome)  # type: ignore[arg-type]
    assert running.calls == ["attach"] and outcome.guest == "mounted" and outcome.warnings == []
    assert any("mounted in the guest at /cvmfs-releases/24.0.3" in m for m in outcome.messages)

    guest.mounts = False
    outcome = ReleaseOutcome()
    app_releases._share_into_running_vm(None, PROJECT, ITEM, restart=False, outcome=outcome)  # type: ignore[arg-type]
    assert outcome.guest == "attached" and not any("mounted in the guest" in m for m in outcome.messages)
    (warning,) = outcome.warnings
    assert "not mounted in the guest" in warning and "mount -t virtiofs" in warning


def test_after_a_boot_each_release_is_mounted_and_checked(
    guest: RecordingAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vmlog.projects import releases

    monkeypatch.setattr(releases, "project_releases", lambda _files: [ITEM])
    monkeypatch.setattr(releases, "guest_facts", lambda _files, _project: {"agent": True, "agent_kind": "standard"})
    assert releases.after_boot(None, PROJECT) == []  # type: ignore[arg-type]
    assert guest.commands[-1].endswith("/proc/mounts") and any("/etc/fstab" in c for c in guest.commands)
    guest.mounts = False
    (warning,) = releases.after_boot(None, PROJECT)  # type: ignore[arg-type]
    assert warning.startswith("release 24.0.3 could not be mounted in the guest: the guest's /proc/mounts")
