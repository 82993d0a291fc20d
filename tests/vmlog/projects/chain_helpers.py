"""Helpers for layer tests: write like a guest, flatten a chain, compare with a reference."""

from __future__ import annotations

import subprocess
from pathlib import Path

from hypervisors import qemu_img


def write_pattern(image: Path, pattern: int, offset: int, length: int = 65536, fmt: str = "qcow2") -> None:
    """Write bytes into an image the way a guest would (through qemu's block layer)."""
    subprocess.run(
        ["qemu-io", "-f", fmt, "-c", f"write -P {pattern} {offset} {length}", str(image)],
        check=True,
        capture_output=True,
    )


def snapshot_raw(image: Path, dest: Path) -> Path:
    """A flat raw copy of what the guest sees through ``image``'s whole chain."""
    return qemu_img.convert(image, dest, src_format="qcow2", dest_format="raw")


def same_content(image: Path, reference: Path) -> bool:
    return qemu_img.compare(image, "qcow2", reference, "raw")
