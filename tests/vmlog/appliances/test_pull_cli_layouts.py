"""`vml appliance pull org/name`, typed as a Vagrant user types it, for each box layout the real tools make.

tests/vmlog/appliances/test_boxes.py checks the layouts through the library; this runs the command itself
(a real process, a Vagrant metadata catalog added with `vml catalog add`), one box per layout, on kvm's
default disk format, and checks the guest-visible bytes of what was stored.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from boxmaker import VAGRANT, convert, pack, provider, raw_disk, vagrant_metadata

from hypervisors import qemu_img


def _create_box_sh(raw: Path, work: Path) -> tuple[str, bytes]:
    """vagrant-libvirt's tools/create_box.sh: `tar cvzf BOX ./metadata.json ./Vagrantfile ./box.img`."""
    return "libvirt", pack(work / "l.box", [("./metadata.json", VAGRANT / "libvirt-v1" / "metadata.json"),
                                            ("./Vagrantfile", VAGRANT / "libvirt-v1" / "Vagrantfile"),
                                            ("./box.img", convert(raw, work / "box.img", "qcow2"))])  # fmt: skip


def _vagrant_package_v2(raw: Path, work: Path) -> tuple[str, bytes]:
    """`vagrant package` v2 (a ``disks`` array), packed with `tar czf x.box -C dir .`."""
    return "libvirt", pack(work / "v2.box", [("./Vagrantfile", VAGRANT / "libvirt-v2" / "Vagrantfile"),
                                             ("./box_1.img", convert(raw, work / "box_1.img", "qcow2")),
                                             ("./box_2.img", convert(raw, work / "box_2.img", "qcow2")),
                                             ("./metadata.json", VAGRANT / "libvirt-v2" / "metadata.json")],
                           dot_dir=True)  # fmt: skip


def _packer_virtualbox(raw: Path, work: Path) -> tuple[str, bytes]:
    """Packer's virtualbox box: a real VirtualBox box.ovf and the streamOptimized VMDK it names."""
    return "virtualbox", pack(work / "vb.box", [
        ("Vagrantfile", VAGRANT / "virtualbox" / "Vagrantfile"),
        ("box-disk001.vmdk", convert(raw, work / "d.vmdk", "vmdk", "streamOptimized")),
        ("box.ovf", VAGRANT / "virtualbox" / "box.ovf"), ("metadata.json", VAGRANT / "virtualbox" / "metadata.json")])


def _packer_vmware_split(raw: Path, work: Path) -> tuple[str, bytes]:
    """Packer's VMware builder: a twoGbMaxExtentSparse descriptor and its ``-sNNN`` extents."""
    split = work / "split"
    split.mkdir()
    convert(raw, split / "disk.vmdk", "vmdk", "twoGbMaxExtentSparse")
    members: list[tuple[str, bytes | Path]] = [("metadata.json", VAGRANT / "vmware_desktop" / "metadata.json")]
    return "vmware_desktop", pack(work / "vm.box", members + [(p.name, p) for p in sorted(split.iterdir())])


LAYOUTS: dict[str, Callable[[Path, Path], tuple[str, bytes]]] = {
    "create_box.sh": _create_box_sh, "vagrant-package-v2": _vagrant_package_v2,
    "packer-virtualbox": _packer_virtualbox, "packer-vmware-split": _packer_vmware_split,
}


def _vml(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VMLOG_HOME": str(home)}
    env.pop("VMLOG_DEBUG", None)
    proc = subprocess.run([sys.executable, "-m", "vmlog.cli.main", *args], env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return proc


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_appliance_pull_org_name_for_every_box_layout(layout: str, http_server, tmp_path: Path) -> None:
    raw = raw_disk(tmp_path / "disk.raw")
    box_provider, box = LAYOUTS[layout](raw, tmp_path)
    url = http_server.add(f"/{layout}.box", box)
    metadata = tmp_path / "metadata.json"
    metadata.write_text(json.dumps(vagrant_metadata("org/name", {"1.0.0": [provider(box_provider, url, box)]})))
    home = tmp_path / "home"
    _vml(home, "catalog", "add", str(metadata))
    pulled = json.loads(_vml(home, "appliance", "pull", "org/name", "--json").stdout)
    assert pulled["appliance"] == "org/name" and pulled["version"] == "1.0.0", pulled
    assert qemu_img.compare(raw, "raw", Path(pulled["disk"]), "qcow2")  # kvm's disk, as the guest will see it
    listed = _vml(home, "appliance", "list").stdout
    assert any(line.startswith("org/name ") and "pulled: 1.0.0" in line for line in listed.splitlines()), listed
