"""qemu-img wrapper: relative backing names, explicit formats, conversions that keep the bytes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from hypervisors import qemu_img
from hypervisors.errors import OperationFailed


def qemu_io_write(image: Path, fmt: str, pattern: int, offset: int, length: int) -> None:
    subprocess.run(
        ["qemu-io", "-f", fmt, "-c", f"write -P {pattern} {offset} {length}", str(image)],
        check=True,
        capture_output=True,
    )


def test_overlay_names_its_backing_relatively_with_format(tmp_path: Path) -> None:
    base = qemu_img.create(tmp_path / "base.raw", "raw", "8M")
    (tmp_path / "layers").mkdir()
    top = qemu_img.create_overlay(tmp_path / "layers" / "l1.qcow2", base, "raw", cluster_size=16384)
    info = qemu_img.info(top, "qcow2")
    assert info["backing-filename"] == "../base.raw"
    assert info["backing-filename-format"] == "raw"
    assert info["cluster-size"] == 16384
    # the chain still resolves after the whole tree moves elsewhere
    moved = tmp_path.parent / (tmp_path.name + "-moved")
    os.rename(tmp_path, moved)
    try:
        qemu_io_write(moved / "layers" / "l1.qcow2", "qcow2", 0xAB, 0, 65536)
        assert not qemu_img.compare(moved / "layers" / "l1.qcow2", "qcow2", moved / "base.raw", "raw")
    finally:
        os.rename(moved, tmp_path)


def test_convert_round_trip_through_vdi_and_vmdk(tmp_path: Path) -> None:
    base = qemu_img.create(tmp_path / "base.qcow2", "qcow2", "4M")
    qemu_io_write(base, "qcow2", 0x5A, 1 << 20, 1 << 20)
    for fmt in ("vdi", "vmdk", "raw"):
        out = qemu_img.convert(base, tmp_path / f"disk.{fmt}", src_format="qcow2", dest_format=fmt)
        assert qemu_img.compare(out, fmt, base, "qcow2"), fmt
        back = qemu_img.convert(out, tmp_path / f"back-{fmt}.qcow2", src_format=fmt, dest_format="qcow2")
        qemu_img.check(back, "qcow2")
        assert qemu_img.compare(back, "qcow2", base, "qcow2")


def test_wrong_explicit_format_fails_instead_of_probing(tmp_path: Path) -> None:
    raw = qemu_img.create(tmp_path / "disk.raw", "raw", "1M")
    with pytest.raises(OperationFailed, match="qemu-img info failed"):
        qemu_img.info(raw, "qcow2")


def test_a_helper_whose_parent_died_before_its_death_signal_was_set_ends_itself(monkeypatch) -> None:
    """The window between fork and prctl: a child whose parent is no longer the process that forked it (its
    parent was killed meanwhile) would never get the parent-death signal, so it ends itself before exec."""
    assert subprocess.run(["true"], preexec_fn=qemu_img.die_with_parent).returncode == 0
    monkeypatch.setattr(os, "getppid", lambda: 1)  # in the child: as if re-parented to init
    assert subprocess.run(["true"], preexec_fn=qemu_img.die_with_parent).returncode == -9
