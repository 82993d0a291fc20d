"""Crash-safe file writes: write to a temp file in the same directory, fsync, rename, fsync the directory.

A reader (or a process restarted after kill -9 or a power cut) sees either the old file or the new
one, never a mix. Temp files carry :data:`TEMP_SUFFIX` so ``vml doctor`` can find and remove the
ones a crash left behind.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

TEMP_SUFFIX = ".vmltmp"


def temp_path_for(path: Path) -> Path:
    """A unique temp name next to ``path`` (same directory, hence same filesystem for ``rename``)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")


def is_temp(path: Path) -> bool:
    return Path(path).name.endswith(TEMP_SUFFIX)


def fsync_dir(directory: Path) -> None:
    """Make a rename or an unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = 0o644) -> Path:
    """Replace ``path`` with ``data`` atomically and durably."""
    path = Path(path)
    tmp = temp_path_for(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: Path, text: str, *, mode: int = 0o644) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def atomic_write_json(path: Path, data: Any, *, mode: int = 0o644) -> Path:
    """Write ``data`` as indented JSON, atomically; a trailing newline keeps the files diff-friendly."""
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n", mode=mode)


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def durable_rename(src: Path, dest: Path) -> None:
    """Rename (files or directories) and make it durable in both parent directories."""
    src, dest = Path(src), Path(dest)
    os.rename(src, dest)
    fsync_dir(dest.parent)
    if src.parent != dest.parent:
        fsync_dir(src.parent)


def fsync_file(path: Path) -> None:
    """Flush a file written by another program (qemu-img, the hypervisor) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
