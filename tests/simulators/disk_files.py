"""The format of a simulator's disk file from its content: a differencing image carries its real name
(``{uuid}.vdi`` on a VDI base) while the simulator stores qcow2 in it, so tests never go by the suffix."""

from __future__ import annotations

from pathlib import Path

from hypervisors.virtualbox.media import sniff_format


def content_format(path: Path) -> str:
    with Path(path).open("rb") as f:
        fmt = sniff_format(f.read(0x200))
    if fmt is None:
        raise ValueError(f"{path}: not a qcow2, VMDK or VDI file")
    return fmt
