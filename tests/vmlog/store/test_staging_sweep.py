"""The image store removes the staging work of a process that is gone (killed mid-add or mid-unpack) when opened."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from vmlog.store.images import ImageStore


def test_staging_entries_of_a_dead_process_go_when_the_store_is_opened(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    mine = store.staging_dir("unpack")
    dead = _dead_pid()
    left = tmp_path / "images" / ".staging" / f"add-{dead}-0123456789ab"
    left.mkdir()
    (left / "half.qcow2").write_bytes(b"x" * 4096)
    unnamed = tmp_path / "images" / ".staging" / "rebuild-0123456789ab"  # not named by staging_dir: doctor's, by age
    unnamed.mkdir()
    ImageStore(tmp_path / "images")
    assert sorted(p.name for p in (tmp_path / "images" / ".staging").iterdir()) == sorted([mine.name, unnamed.name])
    assert mine.name.startswith(f"unpack-{os.getpid()}-")


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid
