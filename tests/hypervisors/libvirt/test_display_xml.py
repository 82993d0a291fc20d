"""Every domain vmlog defines has a screen: VGA shown by VNC on the loopback address; its live address is read back."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from hypervisors.base import DisplayEndpoint
from hypervisors.libvirt.domain_xml import DomainOptions, build_domain_xml, display_endpoint
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
