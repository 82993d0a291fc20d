"""`vml state export --format ova`: a whole VM of one state that a standard OVF reader takes apart and checks.

The package is unpacked with `tar`, its descriptor validated with `xmllint` against the DMTF OVF
envelope schema (DSP8023 1.1.1, tests/fixtures/real/ova/dmtf-schema) and its manifest with `sha256sum`;
the VMDK is checked with `qemu-img info` and `qemu-img compare` against the state's disk.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from vmlog.app import projects
from vmlog.app import states as app_states
from vmlog.app.ova import export_state_ova, import_ova
from vmlog.projects.model import SYSTEM_DISK
from vmlog.workspace import Workspace

SCHEMA = Path(__file__).resolve().parents[2] / "fixtures" / "real" / "ova" / "dmtf-schema" / "dsp8023_1.1.1.xsd"
OVF = "{http://schemas.dmtf.org/ovf/envelope/1}"
RASD = "{http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData}"


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True, cwd=cwd).stdout


@pytest.fixture
def saved_state(vmlog_home: Path, tmp_path: Path) -> tuple[Workspace, str]:
    """A project on a 32 MiB raw base whose state s1 holds guest-like writes above the base."""
    ctx = Workspace.default()
    base = tmp_path / "base.raw"
    with open(base, "wb") as fh:
        fh.truncate(32 << 20)
        fh.write(b"boot sector".ljust(512, b"\0"))
    image = ctx.images.add_file(base, name="testbase", version="1", format="raw")
    project = projects.new_project("analysis", image.sha256, cpus=2, memory_mib=768, ctx=ctx)
    live = ctx.projects.get("analysis").layers.path(project.live[SYSTEM_DISK])
    _run("qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 1M 256k", "-c", "write -P 0x17 20M 64k", live)
    app_states.save_state("analysis", "s1", message="calibrated", ctx=ctx)
    return ctx, "s1"


def test_state_as_ova_unpacks_validates_and_matches_the_state(saved_state, tmp_path: Path) -> None:
    ctx, ref = saved_state
    out = tmp_path / "out"
    out.mkdir()
    result = export_state_ova("analysis", ref, out, ctx=ctx)
    assert result.path == out / "analysis-s1.ova" and result.disks == ("analysis-disk001.vmdk",)

    names = _run("tar", "-tf", result.path).split()
    assert names == ["analysis.ovf", "analysis.mf", "analysis-disk001.vmdk"]  # DSP0243: descriptor, manifest, files
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    _run("tar", "-xf", result.path, "-C", unpacked)
    checked = _run("sha256sum", "--check", "--strict", "analysis.mf", cwd=unpacked)  # reads VirtualBox's tagged lines
    assert checked.split() == ["analysis.ovf:", "OK", "analysis-disk001.vmdk:", "OK"]

    descriptor = unpacked / "analysis.ovf"
    if shutil.which("xmllint"):
        _run("xmllint", "--noout", "--nonet", "--schema", SCHEMA, descriptor)  # raises unless it validates
    root = ET.parse(descriptor).getroot()  # the structure DSP0243 requires, also where xmllint is missing
    assert root.tag == f"{OVF}Envelope" and root.get(f"{OVF}version") == "1.0"
    (file_ref,) = root.iterfind(f"{OVF}References/{OVF}File")
    (disk,) = root.iterfind(f"{OVF}DiskSection/{OVF}Disk")
    assert file_ref.get(f"{OVF}href") == "analysis-disk001.vmdk"
    assert disk.get(f"{OVF}fileRef") == file_ref.get(f"{OVF}id")
    assert int(file_ref.get(f"{OVF}size")) == (unpacked / "analysis-disk001.vmdk").stat().st_size
    assert disk.get(f"{OVF}format").endswith("#streamOptimized") and int(disk.get(f"{OVF}capacity")) == 32 << 20
    items = {i.findtext(f"{RASD}ResourceType"): i for i in root.iterfind(f".//{OVF}VirtualHardwareSection/{OVF}Item")}
    assert items["3"].findtext(f"{RASD}VirtualQuantity") == "2"
    assert items["4"].findtext(f"{RASD}VirtualQuantity") == "768"
    assert items["17"].findtext(f"{RASD}HostResource") == f"/disk/{disk.get(f'{OVF}diskId')}"

    vmdk = unpacked / "analysis-disk001.vmdk"
    info = json.loads(_run("qemu-img", "info", "--output=json", "-f", "vmdk", vmdk))
    assert info["format-specific"]["data"]["create-type"] == "streamOptimized"
    files = ctx.projects.get("analysis")
    state = next(s for s in files.states().values() if s.name == "s1")
    top = files.layers.path(state.layers[SYSTEM_DISK])
    _run("qemu-img", "compare", "-f", "vmdk", "-F", "qcow2", vmdk, top)  # exit 0: identical guest-visible bytes

    again = import_ova(result.path, name="colleague", ctx=ctx)  # and vmlog reads its own package back
    assert again.image.format == "vmdk" and "SHA256 manifest: 2 files match" in again.obtained
