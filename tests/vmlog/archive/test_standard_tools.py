"""A reader without vmlog: `tar`, `zstd -d` and `qemu-img` rebuild each state's disk from its OVF descriptor's chain."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from archive_fixtures import three_state_project

from hypervisors import qemu_img
from vmlog.app.archive import archive_project
from vmlog.projects.model import SYSTEM_DISK

OVF = "{http://schemas.dmtf.org/ovf/envelope/2}"
RASD = "{http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData}"


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True, cwd=cwd).stdout


@pytest.mark.skipif(shutil.which("zstd") is None, reason="needs the zstd command")
def test_each_state_boots_from_the_unpacked_files_with_standard_tools(vmlog_home: Path, tmp_path: Path) -> None:
    made = three_state_project(vmlog_home, tmp_path)
    out = tmp_path / "analysis.vmlarchive"
    archive_project("analysis", out, ctx=made.ctx)
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    _run("tar", "-xf", out, "-C", unpacked)  # the documented steps, docs/archive-format.md
    for packed in sorted(unpacked.glob("*/*.zst")):
        _run("zstd", "-q", "-d", "--rm", packed)
    files = made.ctx.projects.get("analysis")
    for state_id in made.state_ids.values():
        root = ET.parse(unpacked / "ovf" / f"{state_id}.ovf").getroot()
        assert root.get(f"{OVF}version") == "2.0"
        hrefs = {f.get(f"{OVF}id"): f.get(f"{OVF}href") for f in root.iterfind(f"{OVF}References/{OVF}File")}
        disks = {d.get(f"{OVF}diskId"): d for d in root.iterfind(f"{OVF}DiskSection/{OVF}Disk")}
        (item,) = [i for i in root.iterfind(f".//{OVF}VirtualHardwareSection/{OVF}Item")
                   if i.findtext(f"{RASD}ResourceType") == "17"]
        top = disks[item.findtext(f"{RASD}HostResource").rsplit("/", 1)[1]]
        chain = []
        disk = top
        while disk is not None:  # top to base through parentRef
            chain.append(hrefs[disk.get(f"{OVF}fileRef")])
            disk = disks.get(disk.get(f"{OVF}parentRef") or "")
        assert chain[-1].startswith("base/") and all(c.startswith("layers/") for c in chain[:-1])
        info = _run("qemu-img", "info", "--backing-chain", unpacked / chain[0])
        assert info.count("image:") == len(chain)
        state_disk = files.layers.path(files.states()[state_id].layers[SYSTEM_DISK])
        assert qemu_img.compare(unpacked / chain[0], "qcow2", state_disk, "qcow2")
