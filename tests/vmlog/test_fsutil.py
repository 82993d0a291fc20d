"""Atomic writes: the file is replaced whole, temp files are recognisable and cleaned up."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vmlog import fsutil


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "project.json"
    fsutil.atomic_write_json(target, {"a": 1})
    fsutil.atomic_write_json(target, {"a": 2, "b": [1, 2]})
    assert fsutil.read_json(target) == {"a": 2, "b": [1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["project.json"]


def test_failed_write_leaves_old_content_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "x.txt"
    fsutil.atomic_write_text(target, "old")

    class Boom:
        def __len__(self) -> int:
            raise RuntimeError("boom")

    with pytest.raises(TypeError):
        fsutil.atomic_write_bytes(target, Boom())  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.txt"]


def test_temp_names_are_recognised(tmp_path: Path) -> None:
    tmp = fsutil.temp_path_for(tmp_path / "layer.qcow2")
    assert tmp.parent == tmp_path and fsutil.is_temp(tmp)
    assert not fsutil.is_temp(tmp_path / "layer.qcow2")


def test_write_mode(tmp_path: Path) -> None:
    target = fsutil.atomic_write_text(tmp_path / "secret", "x", mode=0o600)
    assert os.stat(target).st_mode & 0o777 == 0o600
