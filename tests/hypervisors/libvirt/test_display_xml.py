"""Every domain vmlog defines has a screen: VGA shown by VNC on the loopback address (and SPICE where QEMU has it);
its live addresses are read back."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hypervisors.base import DisplayEndpoint
from hypervisors.libvirt.domain_xml import (
    DomainOptions,
    build_domain_xml,
    display_endpoint,
    display_endpoints,
    offers_graphics,
)
from hypervisors.spec import DiskSpec, VMSpec

SPEC = VMSpec(name="vm1", disks=(DiskSpec(path=Path("/tmp/system.qcow2"), label="system"),))


def test_the_definition_has_a_vnc_screen_on_loopback_with_a_tablet() -> None:
    root = ET.fromstring(build_domain_xml(SPEC, DomainOptions("kvm")))
    (graphics,) = root.findall("devices/graphics")
    assert graphics.get("type") == "vnc" and graphics.get("autoport") == "yes"
    assert graphics.get("listen") == "127.0.0.1" and graphics.find("listen").get("address") == "127.0.0.1"
    assert root.find("devices/video/model").get("type") == "vga"
    assert root.find("devices/input").attrib == {"type": "tablet", "bus": "usb"}


LIVE = """<domain type='kvm'><name>vm1</name><devices>
  <graphics type='vnc' port='5901' autoport='yes' listen='127.0.0.1'>
    <listen type='address' address='127.0.0.1'/>
  </graphics></devices></domain>"""


def test_the_running_domain_says_where_its_screen_is() -> None:
    found = display_endpoint(LIVE)
    assert found == DisplayEndpoint("vnc", host="127.0.0.1", port=5901)
    assert found.uri == "vnc://127.0.0.1:5901"
    on_socket = "<domain><devices><graphics type='vnc' socket='/run/vm1.vnc'/></devices></domain>"
    assert display_endpoint(on_socket).uri == "vnc+unix:///run/vm1.vnc"
    not_started = "<domain><devices><graphics type='vnc' port='-1' autoport='yes'/></devices></domain>"
    assert display_endpoint(not_started) is None
    assert display_endpoint("<domain><devices/></domain>") is None


REAL = Path(__file__).parents[2] / "fixtures" / "real" / "libvirt"


def test_spice_is_offered_where_qemus_domain_capabilities_list_it() -> None:
    caps = ET.parse(REAL / "domcapabilities-qemu-7.2-tcg.xml").getroot()
    assert offers_graphics(caps, "spice") and offers_graphics(caps, "vnc")
    for graphics in caps.iter("graphics"):  # a QEMU built without the SPICE module
        for value in graphics.findall("enum/value"):
            if value.text == "spice":
                graphics.find("enum").remove(value)
    assert not offers_graphics(caps, "spice") and not offers_graphics(None, "spice")


def test_with_spice_the_screen_is_served_by_vnc_first_and_spice_too() -> None:
    root = ET.fromstring(build_domain_xml(SPEC, DomainOptions("kvm", spice=True)))
    vnc, spice = root.findall("devices/graphics")
    assert vnc.get("type") == "vnc" and spice.get("type") == "spice"
    assert spice.get("autoport") == "yes" and spice.find("listen").get("address") == "127.0.0.1"
    assert [d.get("type") for d in ET.fromstring(build_domain_xml(SPEC, DomainOptions("kvm"))).findall(
        "devices/graphics")] == ["vnc"]


@pytest.mark.skipif(shutil.which("virt-xml-validate") is None, reason="virt-xml-validate (libvirt-clients) missing")
@pytest.mark.parametrize("spice", [False, True])
def test_libvirts_schema_accepts_the_definition(tmp_path: Path, spice: bool) -> None:
    path = tmp_path / "domain.xml"
    path.write_text(build_domain_xml(SPEC, DomainOptions("kvm", spice=spice)))
    checked = subprocess.run(["virt-xml-validate", str(path), "domain"], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_running_server_is_read_back_in_order() -> None:
    live = """<domain><devices>
      <graphics type='vnc' port='5901' autoport='yes' listen='127.0.0.1'><listen type='address' address='127.0.0.1'/>
      </graphics>
      <graphics type='spice' port='5902' autoport='yes' listen='127.0.0.1'><listen type='address' address='127.0.0.1'/>
      </graphics></devices></domain>"""
    assert [e.uri for e in display_endpoints(live)] == ["vnc://127.0.0.1:5901", "spice://127.0.0.1:5902"]
    assert display_endpoint(live).protocol == "vnc"
