"""Health checks (`vml doctor`): which backends work here and why not, each with the fix, and the project store.

The CLI (``vml doctor``), the GUI and ``vml setup`` (to pick the best usable backend) all read
this one report.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field

from hypervisors import qemu_img, registry
from hypervisors.base import Hypervisor, Probe
from hypervisors.errors import HypervisorError
from vmlog.app.projects import remove_project
from vmlog.errors import VmlogError
from vmlog.projects.backends import open_backend
from vmlog.projects.leftovers import find_leftovers
from vmlog.projects.model import Project
from vmlog.projects.repair import StoreReport, check_store
from vmlog.workspace import Workspace, workspace

# Order of preference when vmlog picks a backend by itself.
PREFERRED_BACKENDS = ("kvm", "virtualbox", "vmware")


@dataclass
class Check:
    name: str
    ok: bool
    summary: str
    fix: str | None = None
    details: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "ok": self.ok,
            "summary": self.summary,
            "fix": self.fix,
            "details": self.details,
            "warnings": self.warnings,
        }


@dataclass
class Report:
    backends: list[Probe]
    tools: list[Check]

    @property
    def usable_backends(self) -> list[str]:
        return [p.backend for p in self.backends if p.available]

    def best_backend(self) -> str | None:
        usable = set(self.usable_backends)
        return next((name for name in PREFERRED_BACKENDS if name in usable), None)

    def to_dict(self) -> dict[str, object]:
        return {
            "backends": [p.to_dict() for p in self.backends],
            "tools": [c.to_dict() for c in self.tools],
            "best_backend": self.best_backend(),
        }


@dataclass
class RemoteReport:
    """``vml doctor --uri``: what vmlog needs of a libvirt host, checked over the connection."""

    uri: str
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def to_dict(self) -> dict[str, object]:
        return {"uri": self.uri, "ok": self.ok, "checks": [c.to_dict() for c in self.checks]}


def diagnose_remote(uri: str, *, ctx: Workspace | None = None) -> RemoteReport:
    """Connect to ``uri`` and check the host: versions, KVM, this home's storage pool and its space.

    Nothing is changed on the host: a pool not made yet is reported, not made.
    """
    ctx = workspace(ctx)
    try:
        hv = registry.open_backend("kvm", uri=uri)
    except HypervisorError as exc:
        return RemoteReport(uri, [Check("connect", False, exc.message, fix=exc.fix)])
    with hv:
        found = hv.check_host(ctx.home.home_id)
    return RemoteReport(uri, [Check(c.name, c.ok, c.summary, fix=c.fix, details=dict(c.details),
                                    warnings=list(c.warnings)) for c in found])


def check_qemu_img() -> Check:
    try:
        ver = qemu_img.version()
    except HypervisorError as exc:
        return Check("qemu-img", False, exc.message, fix=exc.fix)
    return Check("qemu-img", True, f"qemu-img {ver}", details={"path": shutil.which("qemu-img") or ""})


def check_project_store(*, repair: bool = False, ctx: Workspace | None = None) -> Check:
    """The project store after a crash: temp files, half-written states, interrupted saves, orphan layers."""
    try:
        report = check_projects(repair=repair, ctx=ctx)
    except Exception as exc:  # the report must still come out if the store cannot be read at all
        return Check("projects", False, f"cannot check the project store: {exc}", fix="see `VMLOG_DEBUG=1 vml doctor`")
    if not report.findings:
        return Check("projects", True, "project store consistent")
    problems = [
        f"{f.project or '-'}: {f.problem} -> {f.action}{' (done)' if f.repaired else ''}" for f in report.findings
    ]
    if report.ok:
        return Check("projects", True, f"repaired {len(problems)} problem(s)", warnings=problems)
    return Check(
        "projects",
        False,
        f"{len(problems)} problem(s) in the project store",
        fix="run `vml doctor --repair` (saved states are kept)",
        warnings=problems,
    )


# Libraries Qt's X11 platform plugin (xcb) loads, by soname, with the Debian package that has each.
QT_XCB_PACKAGES = {
    "libxcb-cursor.so.0": "libxcb-cursor0", "libxcb-icccm.so.4": "libxcb-icccm4", "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1", "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0", "libxcb-xkb.so.1": "libxcb-xkb1", "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-shape.so.0": "libxcb-shape0", "libxcb-sync.so.1": "libxcb-sync1", "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-shm.so.0": "libxcb-shm0", "libxcb-render.so.0": "libxcb-render0", "libxcb-util.so.1": "libxcb-util1",
    "libxcb.so.1": "libxcb1", "libX11-xcb.so.1": "libx11-xcb1", "libX11.so.6": "libx11-6",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0", "libxkbcommon.so.0": "libxkbcommon0", "libSM.so.6": "libsm6",
    "libICE.so.6": "libice6", "libEGL.so.1": "libegl1", "libGL.so.1": "libgl1", "libOpenGL.so.0": "libopengl0",
    "libGLX.so.0": "libglx0", "libfontconfig.so.1": "libfontconfig1", "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3", "libglib-2.0.so.0": "libglib2.0-0",
}


def check_gui_libraries() -> Check:
    """Whether Qt's X11 plugin finds every library it links: vml-gui needs them under X, and Qt's message misleads."""
    import importlib.util
    import subprocess
    from pathlib import Path

    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.origin:
        return Check("gui", False, "PySide6 is not installed: no desktop window", fix="pip install PySide6-Essentials")
    plugin = Path(spec.origin).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    if not plugin.is_file() or shutil.which("ldd") is None:
        return Check("gui", True, "Qt's X11 plugin not checked (no libqxcb.so or no ldd)")
    try:
        listing = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("gui", True, f"Qt's X11 plugin not checked: {exc}")
    missing = sorted({line.split()[0] for line in listing.splitlines() if "not found" in line})
    if not missing:
        return Check("gui", True, "Qt's X11 platform plugin finds all its libraries", details={"plugin": str(plugin)})
    packages = sorted({QT_XCB_PACKAGES.get(name, name) for name in missing})
    fix = f"apt-get install -y {' '.join(packages)}"
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):  # a server without a desktop
        return Check("gui", True, f"vml-gui would not start under X: missing {', '.join(missing)}",
                     details={"plugin": str(plugin)}, warnings=[f"for the desktop window: {fix}"])
    return Check("gui", False, f"vml-gui cannot open a window under X: missing {', '.join(missing)}",
                 fix=fix, details={"plugin": str(plugin)})


def diagnose(*, repair: bool = False, ctx: Workspace | None = None) -> Report:
    return Report(
        backends=registry.probe_all(),
        tools=[
            check_qemu_img(),
            check_leftovers(repair=repair, ctx=ctx),
            check_project_store(repair=repair, ctx=ctx),
            check_gui_libraries(),
        ],
    )


def check_leftovers(*, repair: bool = False, ctx: Workspace | None = None) -> Check:
    """What killed vmlog processes left outside the projects (see :mod:`vmlog.projects.leftovers`)."""
    ctx = workspace(ctx)
    try:
        found = find_leftovers(ctx.home)
    except OSError as exc:
        return Check("leftovers", False, f"cannot look for leftovers: {exc}", fix="see `VMLOG_DEBUG=1 vml doctor`")
    if not found:
        return Check("leftovers", True, "nothing left behind by interrupted commands")
    lines = []
    for leftover in found:
        done = ""
        if repair:
            if leftover.project is not None:
                done = _finish_import(ctx, leftover.project)
            leftover.remove()
            done = done or " (removed)"
        lines.append(leftover.what + done)
    if repair:
        return Check("leftovers", True, f"cleaned up {len(found)} leftover(s)", warnings=lines)
    if all(leftover.harmless for leftover in found):
        return Check("leftovers", True, f"{len(found)} partial download(s) kept for resuming", warnings=lines)
    return Check("leftovers", False, f"{len(found)} leftover(s) of interrupted commands",
                 fix="run `vml doctor --repair`", warnings=lines)


def _finish_import(ctx: Workspace, project: str) -> str:
    """A project an import was creating when it was killed: kept if its state arrived, else removed."""
    if project not in ctx.projects.names():
        return " (removed)"
    if ctx.projects.get(project).states():
        return f" (project {project} holds the imported state: kept)"
    try:
        remove_project(project, ctx=ctx)
    except VmlogError as exc:
        return f" (could not remove the half-imported project {project}: {exc.message})"
    return f" (removed, with the half-imported project {project})"


def check_projects(*, repair: bool = False, ctx: Workspace | None = None) -> StoreReport:
    """What ``vml doctor`` reports about the project store, and repairs with ``--repair``."""
    ctx = workspace(ctx)

    def backend_for(project: Project) -> Hypervisor | None:
        try:
            return open_backend(project)
        except Exception:  # a repair must work without the backend
            return None

    def release(sha: str, holder: str) -> None:
        try:
            ctx.images.remove_ref(sha, holder)
        except VmlogError:
            pass

    return check_store(ctx.projects, repair=repair, release_ref=release, backend_for=backend_for,
                       locks_dir=ctx.home.locks)

