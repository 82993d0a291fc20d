"""Tests of the content-addressed image store: adding, resolving, verifying, refs, conversion."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import pytest

from hypervisors import qemu_img
from vmlog.errors import Busy, IntegrityError, InvalidInput, NotFound
from vmlog.store import ImageStore
from vmlog.store.image_gate import HostileImage


def _payload(tmp_path: Path, data: bytes, name: str = "src.img") -> tuple[Path, str]:
    path = tmp_path / name
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "images")


def test_add_file_stores_read_only_copy_under_its_digest(store: ImageStore, tmp_path: Path) -> None:
    src, sha = _payload(tmp_path, os.urandom(3 * 1024 * 1024 + 17))
    image = store.add_file(src, name="demo", version="1.0", format="raw", urls=["https://example.org/a"])
    assert image.sha256 == sha
    assert image.path == store.root / sha / "demo-1.0.raw"
    assert image.path.read_bytes() == src.read_bytes()
    assert image.size == src.stat().st_size
    assert image.path.stat().st_mode & 0o777 == 0o444
    assert src.exists()  # copied, not moved
    meta = json.loads((store.root / sha / "meta.json").read_text())
    assert meta["urls"] == ["https://example.org/a"] and meta["sha256"] == sha
    assert store.list() == [image]
    assert not any((store.root / ".staging").iterdir())


def test_add_file_is_idempotent_and_merges_urls(store: ImageStore, tmp_path: Path) -> None:
    src, sha = _payload(tmp_path, b"x" * 5000)
    first = store.add_file(src, name="demo", version="1", format="raw", urls=["https://a/x"])
    second = store.add_file(src, name="demo", version="1", format="raw", urls=["https://b/x"])
    assert first.path == second.path
    assert second.urls == ("https://a/x", "https://b/x")
    assert len(store.list()) == 1


def test_expected_digest_mismatch_leaves_nothing(store: ImageStore, tmp_path: Path) -> None:
    src, sha = _payload(tmp_path, b"hello world")
    with pytest.raises(IntegrityError, match="expected"):
        store.add_file(src, name="demo", version="1", format="raw", expected_sha256="0" * 64, move=True)
    assert store.list() == []
    assert not [p for p in store.root.iterdir() if not p.name.startswith(".")]
    assert not any((store.root / ".staging").iterdir())
    assert src.exists()  # a refused move keeps the source


def test_move_removes_source(store: ImageStore, tmp_path: Path) -> None:
    src, sha = _payload(tmp_path, b"moving bytes" * 1000)
    image = store.add_file(src, name="demo", version="2", format="raw", move=True, expected_sha256=sha)
    assert not src.exists()
    assert hashlib.sha256(image.path.read_bytes()).hexdigest() == sha


def test_get_by_digest_prefix_and_name(store: ImageStore, tmp_path: Path) -> None:
    a, sha_a = _payload(tmp_path, b"version nine", "a")
    b, sha_b = _payload(tmp_path, b"version ten", "b")
    store.add_file(a, name="demo", version="4.9", format="raw")
    store.add_file(b, name="demo", version="4.10", format="raw")
    assert store.get(sha_a).sha256 == sha_a
    assert store.get(sha_a[:8]).sha256 == sha_a
    assert store.get("demo:4.9").sha256 == sha_a
    assert store.get("demo").version == "4.10"  # natural version order, not string order
    with pytest.raises(NotFound):
        store.get("other")
    with pytest.raises(NotFound):
        store.get("demo:5")
    assert store.find(sha_b) is not None and store.find("f" * 64) is None


def test_get_refuses_ambiguous_formats(store: ImageStore, tmp_path: Path) -> None:
    a, _ = _payload(tmp_path, b"iso bytes", "a")
    b, _ = _payload(tmp_path, b"hdd bytes", "b")
    store.add_file(a, name="cernvm", version="1", format="iso")
    store.add_file(b, name="cernvm", version="1", format="hdd")
    with pytest.raises(InvalidInput, match="ambiguous"):
        store.get("cernvm:1")


def test_unsafe_names_rejected(store: ImageStore, tmp_path: Path) -> None:
    src, _ = _payload(tmp_path, b"z")
    with pytest.raises(InvalidInput):
        store.add_file(src, name="../evil", version="1", format="raw")
    with pytest.raises(InvalidInput):
        store.add_file(src, name="ok", version="1/2", format="raw")


def test_verify_detects_corruption(store: ImageStore, tmp_path: Path) -> None:
    src, sha = _payload(tmp_path, os.urandom(100_000))
    image = store.add_file(src, name="demo", version="1", format="raw")
    store.verify(sha)
    os.chmod(image.path, 0o644)
    with open(image.path, "r+b") as fh:
        fh.seek(5000)
        fh.write(b"\x00\xff\x00")
    with pytest.raises(IntegrityError, match="corrupt"):
        store.verify(sha)


def test_remove_refused_while_referenced(store: ImageStore, tmp_path: Path) -> None:
    src, sha = _payload(tmp_path, b"shared base")
    store.add_file(src, name="base", version="1", format="raw")
    store.add_ref(sha, "project/analysis-a")
    store.add_ref(sha, "project/analysis-b")
    assert store.refs(sha) == ["project/analysis-a", "project/analysis-b"]
    with pytest.raises(Busy, match="analysis-a.*analysis-b"):
        store.remove("base")
    store.remove_ref(sha, "project/analysis-a")
    store.remove_ref(sha, "project/analysis-b")
    store.remove(sha[:10])
    assert store.find(sha) is None
    assert store.list() == []


def test_concurrent_adds_of_same_bytes_yield_one_entry(store: ImageStore, tmp_path: Path) -> None:
    data = os.urandom(2 * 1024 * 1024)
    sources = []
    for i in range(4):
        path = tmp_path / f"s{i}"
        path.write_bytes(data)
        sources.append(path)
    results = []

    def add(path: Path) -> None:
        results.append(store.add_file(path, name="c", version="1", format="raw"))

    threads = [threading.Thread(target=add, args=(p,)) for p in sources]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.path for r in results}) == 1 and len(results) == 4
    assert len(store.list()) == 1
    assert not any((store.root / ".staging").iterdir())


def test_converted_is_made_once_and_same_guest_bytes(store: ImageStore, tmp_path: Path) -> None:
    raw = tmp_path / "disk.raw"
    with open(raw, "wb") as fh:
        fh.truncate(8 * 1024 * 1024)
        fh.seek(1024 * 1024)
        fh.write(os.urandom(65536))
    image = store.add_file(raw, name="disk", version="1", format="hdd")
    qcow = store.converted(image.sha256, "qcow2")
    assert qemu_img.info(qcow, "qcow2")["format"] == "qcow2"
    assert qemu_img.compare(image.path, "raw", qcow, "qcow2")
    assert qcow.stat().st_mode & 0o777 == 0o444
    mtime = qcow.stat().st_mtime_ns
    assert store.converted(image.sha256, "qcow2") == qcow and qcow.stat().st_mtime_ns == mtime
    vdi = store.converted(image.sha256, "vdi")
    assert qemu_img.compare(image.path, "raw", vdi, "vdi")
    assert store.converted(image.sha256, "raw") == image.path


def test_converted_refuses_qcow2_with_backing_file(store: ImageStore, tmp_path: Path) -> None:
    base = qemu_img.create(tmp_path / "base.qcow2", "qcow2", 1024 * 1024)
    overlay = qemu_img.create_overlay(tmp_path / "evil.qcow2", base, "qcow2")
    with pytest.raises(HostileImage, match="backing"):
        store.add_file(overlay, name="evil", version="1", format="qcow2")
    assert store.list() == []
    plain = store.add_file(base, name="evil", version="1", format="qcow2")
    os.chmod(plain.path, 0o644)
    plain.path.write_bytes(overlay.read_bytes())  # an entry changed behind the store's back
    with pytest.raises(HostileImage, match="backing"):
        store.converted(plain.sha256, "raw")
    assert not (store.root / plain.sha256 / "converted" / "evil-1.raw").exists()
