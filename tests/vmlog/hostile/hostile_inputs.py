"""Hostile disk images, boxes and bundles for the corpus, and the probes that show what a command did to the host.

Every image is made small (1 MiB virtual) with qemu-img and then, where qemu-img would not write such a
thing, patched byte by byte. ``canary`` is a host file an image tries to make vmlog read; an inotify
watch on it records any open by any process (qemu-img included), also as root, where making it
unreadable would prove nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import gzip
import io
import json
import lzma
import os
import sqlite3
import struct
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vmlog.cli import main

IN_ACCESS, IN_OPEN = 0x1, 0x20
MIB = 1 << 20


# -- probes -------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def watch_opens(path: Path) -> Iterator[list[int]]:
    """Yield a list that holds, after the block, one entry per inotify event (open or read) on ``path``."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    assert fd >= 0, "inotify is not available"
    events: list[int] = []
    try:
        assert libc.inotify_add_watch(fd, str(path).encode(), IN_OPEN | IN_ACCESS) >= 0
        yield events
        with contextlib.suppress(BlockingIOError):
            while data := os.read(fd, 4096):
                events += [struct.unpack_from("iIII", data, i)[1] for i in range(0, len(data), 16)]
    finally:
        os.close(fd)


IGNORED = (".lock",)


def home_files(home: Path) -> dict[str, int]:
    """Every file under the home with its size, but flock files and the logbook database (checked apart)."""
    found = {}
    for path in home.rglob("*"):
        if path.is_file() and not path.name.endswith(IGNORED) and not path.name.startswith("logbook.sqlite"):
            found[str(path.relative_to(home))] = path.stat().st_size
    return found


def logbook_rows(home: Path) -> list[tuple[str, str, str]]:
    books = list(home.rglob("logbook.sqlite"))
    if not books:
        return []
    with contextlib.closing(sqlite3.connect(books[0])) as db:
        return [tuple(row) for row in db.execute("SELECT action, outcome, COALESCE(message, '') FROM operations")]


def run_vml(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """``vml ARGS`` through the real entry point (``vmlog.cli.main.run``) in this process: (exit code, stderr)."""
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["vml", *args])
    monkeypatch.delenv("VMLOG_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exited:
        main.run()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), capsys.readouterr().err


def assert_refused(code: int, err: str, expected_code: int, reason: str, before: dict[str, int], home: Path,
                   opens: list[int], *, rows: int = 1, row_says: str = "refused") -> None:
    """The corpus's four assertions: exit code, a one-line message naming ``reason``, one failed row (saying
    ``row_says``), no canary opened."""
    assert code == expected_code, err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and reason.lower() in lines[0].lower(), err
    following = err.splitlines()[err.splitlines().index(lines[0]) + 1 :]
    assert not following or following[0].startswith("  fix: "), err  # the message is one line
    assert "Traceback" not in err
    assert home_files(home) == before, "the refusal left files in the home"
    book = logbook_rows(home)
    assert len(book) == rows and all(outcome == "failed" and row_says in msg for _a, outcome, msg in book), book
    assert opens == [], "a host file was opened"


# -- images -------------------------------------------------------------------------------------------------
def qemu_create(path: Path, fmt: str, *options: str, size: str = "1M") -> Path:
    args = ["qemu-img", "create", "-q", "-f", fmt] + (["-o", ",".join(options)] if options else [])
    subprocess.run([*args, str(path), size], check=True, cwd=path.parent, capture_output=True)
    return path


def patch(path: Path, offset: int, data: bytes) -> Path:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)
    return path


def _qcow2_backing(d: Path, canary: Path, name: str) -> Path:
    """A qcow2 naming ``name`` as its backing file (written into the header, no format extension)."""
    image = qemu_create(d / "img", "qcow2")
    data = bytearray(image.read_bytes())
    raw = name.encode()
    data[8:16] = struct.pack(">Q", 2048)
    data[16:20] = struct.pack(">I", len(raw))
    data[2048 : 2048 + len(raw)] = raw
    image.write_bytes(bytes(data))
    return image


def _vmdk_embedded(d: Path, replace: Callable[[str], str], capacity: int | None = None) -> Path:
    image = qemu_create(d / "img", "vmdk")
    data = bytearray(image.read_bytes())
    desc_offset, desc_size = struct.unpack("<QQ", data[28:44])
    start, length = desc_offset * 512, desc_size * 512
    text = replace(data[start : start + length].split(b"\0", 1)[0].decode()).encode()
    assert len(text) <= length
    data[start : start + length] = text.ljust(length, b"\0")
    if capacity is not None:
        data[12:20] = struct.pack("<Q", capacity)
    image.write_bytes(bytes(data))
    return image


def _descriptor(d: Path, extents: str, kind: str = "monolithicFlat") -> Path:
    image = d / "img"
    image.write_text(f'# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="{kind}"\n'
                     f"{extents}\n")
    return image


def _archive(d: Path, kind: str) -> Path:
    payload = qemu_create(d / "inner.qcow2", "qcow2").read_bytes()
    image = d / "img"
    if kind == "gzip":
        image.write_bytes(gzip.compress(payload))
    elif kind == "xz":
        image.write_bytes(lzma.compress(payload))
    elif kind == "bzip2":
        image.write_bytes(b"BZh91AY&SY" + b"\0" * 600)
    elif kind == "zstd":
        image.write_bytes(b"\x28\xb5\x2f\xfd" + b"\0" * 600)
    else:
        with tarfile.open(image, "w") as tf:
            if kind == "ova":
                tf.addfile(tarfile.TarInfo("appliance.ovf"), io.BytesIO(b""))
            tf.add(d / "inner.qcow2", "disk.qcow2")
    return image


def _qcow2_field(offset: int, data: bytes) -> Callable[[Path, Path], Path]:
    return lambda d, canary: patch(qemu_create(d / "img", "qcow2"), offset, data)


def _qcow2_data_file_extension(d: Path, canary: Path) -> Path:
    """A data file named by the header extension only (the incompatible feature bit cleared)."""
    image = qemu_create(d / "img", "qcow2", f"data_file={d / 'data.raw'}")
    incompat = struct.unpack(">Q", image.read_bytes()[72:80])[0]
    return patch(image, 72, struct.pack(">Q", incompat & ~4))


# name -> (maker(dir, canary) -> file, declared catalog format, reason the message must name)
IMAGES: dict[str, tuple[Callable[[Path, Path], Path], str, str]] = {
    "qcow2-backing-host-file": (lambda d, c: _qcow2_backing(d, c, str(c)), "qcow2", "backing file"),
    "qcow2-backing-json": (
        lambda d, c: _qcow2_backing(d, c, "json:" + json.dumps({"driver": "raw", "file": {"filename": str(c)}})),
        "qcow2", "backing file"),
    "qcow2-backing-relative": (lambda d, c: _qcow2_backing(d, c, "../" * 8 + str(c).lstrip("/")), "qcow2",
                               "backing file"),
    "qcow2-backing-device": (lambda d, c: _qcow2_backing(d, c, "/dev/zero"), "qcow2", "backing file"),
    "qcow2-backing-made-by-qemu": (
        lambda d, c: qemu_create(d / "img", "qcow2", f"backing_file={c}", "backing_fmt=raw"), "qcow2",
        "backing file"),
    "qcow2-data-file": (lambda d, c: qemu_create(d / "img", "qcow2", f"data_file={d / 'data.raw'}"), "qcow2",
                        "data file"),
    "qcow2-data-file-extension-only": (_qcow2_data_file_extension, "qcow2", "data file"),
    "qcow2-unknown-feature": (_qcow2_field(72, struct.pack(">Q", 1 << 20)), "qcow2", "unknown qcow2 features"),
    "qcow2-dirty": (_qcow2_field(72, struct.pack(">Q", 1)), "qcow2", "dirty or corrupt"),
    "qcow2-corrupt": (_qcow2_field(72, struct.pack(">Q", 2)), "qcow2", "dirty or corrupt"),
    "qcow2-version-4": (_qcow2_field(4, struct.pack(">I", 4)), "qcow2", "version 4"),
    "qcow2-cluster-bits-30": (_qcow2_field(20, struct.pack(">I", 30)), "qcow2", "cluster size"),
    "qcow2-virtual-size-2^60": (_qcow2_field(24, struct.pack(">Q", 1 << 60)), "qcow2", "virtual size"),
    "qcow2-virtual-size-0": (_qcow2_field(24, struct.pack(">Q", 0)), "qcow2", "virtual size"),
    "qcow2-header-length-huge": (_qcow2_field(100, struct.pack(">I", 1 << 20)), "qcow2", "header length"),
    "qcow2-extension-past-4k": (_qcow2_field(112, struct.pack(">II", 0x12345678, 8000)), "qcow2",
                                "header extension"),
    "qcow2-truncated-header": (lambda d, c: _truncate(qemu_create(d / "img", "qcow2"), 40), "qcow2", "qcow2"),
    "qcow2-declared-raw": (lambda d, c: _qcow2_backing(d, c, str(c)), "raw", "header says qcow2"),
    "qcow2-declared-hdd": (lambda d, c: qemu_create(d / "img", "qcow2"), "hdd", "header says qcow2"),
    "qcow2-declared-vmdk": (lambda d, c: qemu_create(d / "img", "qcow2"), "vmdk", "header says qcow2"),
    "qcow2-declared-vdi": (lambda d, c: qemu_create(d / "img", "qcow2"), "vdi", "header says qcow2"),
    "qcow2-declared-iso": (lambda d, c: qemu_create(d / "img", "qcow2"), "iso", "header says qcow2"),
    "vmdk-flat-extent-host-file": (lambda d, c: _descriptor(d, f'RW 2048 FLAT "{c}" 0'), "vmdk", "extents"),
    "vmdk-split-sparse-extents": (
        lambda d, c: _descriptor(d, 'RW 2048 SPARSE "a-s001.vmdk"\nRW 2048 SPARSE "a-s002.vmdk"',
                                 "twoGbMaxExtentSparse"), "vmdk", "extents"),
    "vmdk-vmfs-extent": (lambda d, c: _descriptor(d, f'RW 2048 VMFS "{c}"', "vmfs"), "vmdk", "extents"),
    "vmdk-descriptor-declared-raw": (lambda d, c: _descriptor(d, f'RW 2048 FLAT "{c}" 0'), "raw",
                                     "header says vmdk-descriptor"),
    "vmdk-capacity-0": (lambda d, c: _vmdk_embedded(d, lambda t: t, capacity=0), "vmdk", "capacity 0"),
    "vmdk-embedded-flat-extent": (
        lambda d, c: _vmdk_embedded(d, lambda t: t.replace('createType="monolithicSparse"',
                                                           'createType="monolithicFlat"')), "vmdk", "monolithicFlat"),
    "vmdk-embedded-second-extent": (
        lambda d, c: _vmdk_embedded(d, lambda t: t.replace("# The Disk Data Base", f'RW 8 FLAT "{c}" 0\n#')),
        "vmdk", "more than its own sparse extent"),
    "vmdk-delta-parent-cid": (
        lambda d, c: _vmdk_embedded(d, lambda t: t.replace("parentCID=ffffffff", "parentCID=12345678")), "vmdk",
        "parent"),
    "vmdk-parent-file-name-hint": (
        lambda d, c: _vmdk_embedded(d, lambda t: t.replace("# The Disk Data Base", f'parentFileNameHint="{c}"\n#')),
        "vmdk", "parent"),
    "vmdk-cowd": (lambda d, c: patch(qemu_create(d / "img", "vmdk"), 0, b"COWD"), "vmdk", "COWD"),
    "vmdk-version-9": (lambda d, c: patch(qemu_create(d / "img", "vmdk"), 4, struct.pack("<I", 9)), "vmdk",
                       "version 9"),
    "vmdk-declared-qcow2": (lambda d, c: qemu_create(d / "img", "vmdk"), "qcow2", "header says vmdk"),
    "vdi-differencing": (lambda d, c: patch(qemu_create(d / "img", "vdi"), 0x4C, struct.pack("<I", 4)), "vdi",
                         "differencing"),
    "vdi-undo": (lambda d, c: patch(qemu_create(d / "img", "vdi"), 0x4C, struct.pack("<I", 3)), "vdi", "undo"),
    "vdi-virtual-size-2^60": (lambda d, c: patch(qemu_create(d / "img", "vdi"), 0x170, struct.pack("<Q", 1 << 60)),
                              "vdi", "virtual size"),
    "vdi-declared-qcow2": (lambda d, c: qemu_create(d / "img", "vdi"), "qcow2", "header says vdi"),
    "vpc-declared-raw": (lambda d, c: qemu_create(d / "img", "vpc"), "raw", "header says vpc"),
    "vhdx-declared-img": (lambda d, c: qemu_create(d / "img", "vhdx"), "img", "header says vhdx"),
    "gzip-as-qcow2": (lambda d, c: _archive(d, "gzip"), "qcow2", "gzip archive"),
    "xz-as-qcow2": (lambda d, c: _archive(d, "xz"), "qcow2", "xz archive"),
    "zstd-as-raw": (lambda d, c: _archive(d, "zstd"), "raw", "zstd archive"),
    "bzip2-as-vmdk": (lambda d, c: _archive(d, "bzip2"), "vmdk", "bzip2 archive"),
    "tar-as-raw": (lambda d, c: _archive(d, "tar"), "raw", "tar archive"),
    "ova-as-qcow2": (lambda d, c: _archive(d, "ova"), "qcow2", "ova archive"),
    "empty-raw": (lambda d, c: _empty(d), "raw", "virtual size"),
}


def _truncate(path: Path, size: int) -> Path:
    path.write_bytes(path.read_bytes()[:size])
    return path


def _empty(d: Path) -> Path:
    (d / "img").write_bytes(b"")
    return d / "img"


def make_image(case: str, directory: Path, canary: Path) -> tuple[Path, str, str]:
    """The hostile file of ``case`` (in its own directory), its declared format and the reason to name."""
    maker, declared, reason = IMAGES[case]
    directory.mkdir(parents=True, exist_ok=True)
    return maker(directory, canary), declared, reason


def make_box(path: Path, members: dict[str, bytes], *, compress: bool = True) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(buf.getvalue(), 1) if compress else buf.getvalue())
    return path


def write_box(path: Path, members: list[tuple[str, Iterator[bytes] | bytes, int | None]], *,
              compress: bool = True) -> Path:
    """A box streamed to ``path`` (gzip unless not ``compress``) from ``(name, bytes or chunks, declared size)``.

    A member's tar header says its ``declared`` size (None: its real length, known only for bytes); a member whose
    chunks stop short of it is the archive's last (the archive is then cut there, as a lying header leaves it).
    """
    raw = open(path, "wb")  # noqa: SIM115 - closed below, after the gzip stream on it
    out: io.RawIOBase | gzip.GzipFile = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9) if compress else raw
    try:
        for name, data, declared in members:
            chunks = [data] if isinstance(data, bytes) else data
            info = tarfile.TarInfo(name)
            info.size = declared if declared is not None else len(data)  # type: ignore[arg-type]
            out.write(info.tobuf(tarfile.GNU_FORMAT))
            length = 0
            for chunk in chunks:
                out.write(chunk)
                length += len(chunk)
            if length < info.size:
                return path
            out.write(bytes(-length % 512))
        out.write(bytes(1024))
    finally:
        out.close()
        raw.close()
    return path


def repeated(byte: bytes, size: int, head: bytes = b"") -> Iterator[bytes]:
    """``head`` then ``byte`` repeated up to ``size`` bytes in all, in 1 MiB chunks (never all in memory)."""
    yield head
    left = size - len(head)
    block = byte * MIB
    while left > 0:
        yield block[: min(left, MIB)]
        left -= MIB
