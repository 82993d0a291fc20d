"""Catalogs: vmlog's format, Vagrant metadata and boxes, CernVM's release layout, pulling for real."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from hypervisors import qemu_img
from vmlog.appliances.box import extract_box
from vmlog.appliances.builtin import cernvm_appliance
from vmlog.appliances.catalog import Catalogs, parse_catalog
from vmlog.appliances.pull import pull
from vmlog.errors import AlreadyExists, IntegrityError, InvalidInput, NotFound
from vmlog.store import ImageStore


def _raw_disk(path: Path, size: int = 4 << 20) -> bytes:
    data = bytearray(size)
    data[512 * 7 : 512 * 7 + 4096] = os.urandom(4096)
    path.write_bytes(bytes(data))
    return bytes(data)


def _catalog(url: str, data: bytes, fmt: str = "raw") -> dict:
    return {
        "vmlog_catalog": 1,
        "appliances": [
            {
                "name": "demo",
                "title": "Demo appliance",
                "description": "a raw disk for tests",
                "versions": [
                    {
                        "version": "1.2",
                        "min_memory_mib": 256,
                        "context": "nocloud",
                        "images": {
                            fmt: {
                                "urls": [url],
                                "size": len(data),
                                "digest": {"sha256": hashlib.sha256(data).hexdigest()},
                            }
                        },
                    },
                    {"version": "1.10", "images": {}},
                ],
            }
        ],
    }


def test_parse_vmlog_catalog_and_pick_latest() -> None:
    (appliance,) = parse_catalog(_catalog("https://m/x.raw", b"abc"), source="t")
    assert appliance.name == "demo" and appliance.resolve().version == "1.10"
    version = appliance.resolve("1.2")
    assert version.images["raw"].urls == ("https://m/x.raw",) and version.min_memory_mib == 256
    with pytest.raises(NotFound):
        appliance.resolve("9")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(vmlog_catalog=2),
        lambda d: d["appliances"][0].update(name="../x"),
        lambda d: d["appliances"][0]["versions"][0]["images"]["raw"].pop("digest"),
        lambda d: d["appliances"][0]["versions"][0]["images"]["raw"].update(digest={"md5": "00"}),
        lambda d: d["appliances"][0]["versions"][0].update(context="windows"),
    ],
)
def test_malformed_catalogs_refused(mutate) -> None:
    doc = _catalog("https://m/x.raw", b"abc")
    mutate(doc)
    with pytest.raises(InvalidInput):
        parse_catalog(doc, source="t")


def test_catalog_add_list_remove_and_pull(http_server, tmp_path: Path) -> None:
    data = _raw_disk(tmp_path / "disk.raw")
    img_url = http_server.add("/demo.raw", data)
    cat_url = http_server.add("/catalog.json", json.dumps(_catalog(img_url, data)).encode())
    catalogs = Catalogs(tmp_path / "config")
    entry = catalogs.add(cat_url)
    assert entry.name == "demo" and catalogs.entries() == [entry]
    with pytest.raises(AlreadyExists):
        catalogs.add(cat_url)
    names = [a.name for a in catalogs.appliances()]
    assert names == ["cernvm", "demo", "vmlog-debian", "vmlog-test"]
    assert [a.name for a in catalogs.search("raw disk")] == ["demo"]

    store = ImageStore(tmp_path / "images")
    pulled = pull(catalogs.get("demo"), store, version="1.2", downloads=tmp_path / "dl")
    assert pulled.image.format == "raw" and pulled.disk_format == "qcow2"
    assert qemu_img.compare(pulled.image.path, "raw", pulled.disk, "qcow2")
    again = pull(catalogs.get("demo"), store, version="1.2", downloads=tmp_path / "dl")
    assert again.disk == pulled.disk
    assert len(http_server.requests("/demo.raw")) == 1

    catalogs.remove("demo")
    assert catalogs.entries() == []
    with pytest.raises(NotFound):
        catalogs.remove("demo")


def _box(path: Path, members: dict[str, bytes], *, gz: bool = True, extra=None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if extra:
            extra(tar)
    raw = buf.getvalue()
    blob = gzip.compress(raw, compresslevel=1) if gz else raw
    path.write_bytes(blob)
    return blob


def test_vagrant_metadata_box_pull(http_server, tmp_path: Path) -> None:
    qcow = qemu_img.create(tmp_path / "box.img", "qcow2", 2 << 20)
    box = _box(
        tmp_path / "l.box",
        {
            "metadata.json": b'{"provider": "libvirt", "format": "qcow2"}',
            "Vagrantfile": b"",
            "box.img": qcow.read_bytes(),
        },
    )
    box_url = http_server.add("/debian.box", box)
    metadata = {
        "name": "generic/debian12",
        "versions": [
            {
                "version": "4.3.12",
                "providers": [
                    {
                        "name": "libvirt",
                        "url": box_url,
                        "checksum_type": "sha256",
                        "checksum": hashlib.sha256(box).hexdigest(),
                    },
                    {"name": "hyperv", "url": "https://x/h.box", "checksum_type": "sha256", "checksum": "0" * 64},
                ],
            }
        ],
    }
    (appliance,) = parse_catalog(metadata, source="vagrant")
    assert appliance.name == "generic/debian12" and appliance.store_name == "generic-debian12"
    assert list(appliance.resolve().images) == ["box/libvirt"]
    store = ImageStore(tmp_path / "images")
    pulled = pull(appliance, store, downloads=tmp_path / "dl")
    assert pulled.image.format == "qcow2" and pulled.image.path.read_bytes() == qcow.read_bytes()
    assert [i.format for i in store.list()] == ["qcow2"]  # the box itself is not kept
    pull(appliance, store, downloads=tmp_path / "dl")
    assert len(http_server.requests("/debian.box")) == 1


def test_box_with_traversal_or_links_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil.box"
    _box(evil, {"metadata.json": b"{}", "../../etc/box.img": b"x"})
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(IntegrityError, match="outside"):
        extract_box(evil, "libvirt", out)

    def add_link(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo("box.img")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/shadow"
        tar.addfile(info)

    linked = tmp_path / "link.box"
    _box(linked, {"metadata.json": b"{}"}, extra=add_link)
    out2 = tmp_path / "out2"
    out2.mkdir()
    with pytest.raises(IntegrityError, match="link"):
        extract_box(linked, "libvirt", out2)
    assert not (tmp_path / "etc").exists()
    assert not (out / "disk.qcow2").exists() and not (out2 / "disk.qcow2").exists()


def test_box_size_limit(tmp_path: Path) -> None:
    box = tmp_path / "big.box"
    _box(box, {"metadata.json": b"{}", "disk.vmdk": b"\0" * 100_000})
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(IntegrityError, match="limit"):
        extract_box(box, "virtualbox", out, max_disk_bytes=50_000)
    ok = tmp_path / "ok"
    ok.mkdir()
    disk, fmt, meta = extract_box(box, "virtualbox", ok)
    assert fmt == "raw" and disk.stat().st_size == 100_000 and meta == {}  # the format its bytes show


def test_cernvm_layout_from_local_mirror(http_server, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("VMLOG_CERNVM_BASE_URL", http_server.url("/releases"))
    version = "2024.04-1"
    hdd = _raw_disk(tmp_path / "hdd", 3 << 20)
    http_server.add("/releases/latest", f"{version}\n".encode())
    image_path = f"/releases/ucernvm-images.{version}.cernvm.x86_64/ucernvm-v4prod.{version}.cernvm.x86_64.hdd"
    http_server.add(image_path, hdd)
    http_server.add(image_path + ".sha256", f"{hashlib.sha256(hdd).hexdigest()}  x.hdd\n".encode())
    appliance = cernvm_appliance(tmp_path / "config")
    resolved = appliance.resolve()
    assert resolved.version == version and resolved.context == "cernvm"
    assert resolved.scratch_disk_gib >= 20 and resolved.min_memory_mib >= 2048
    store = ImageStore(tmp_path / "images")
    pulled = pull(appliance, store, downloads=tmp_path / "dl")
    assert pulled.image.format == "hdd" and pulled.image.path.read_bytes() == hdd
    assert qemu_img.compare(pulled.image.path, "raw", pulled.disk, "qcow2")


def test_cernvm_bad_published_digest(http_server, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("VMLOG_CERNVM_BASE_URL", http_server.url("/releases"))
    version = "5.0"
    image_path = f"/releases/ucernvm-images.{version}.cernvm.x86_64/ucernvm-v4prod.{version}.cernvm.x86_64.hdd"
    http_server.add(image_path, b"some bytes")
    http_server.add(image_path + ".sha256", hashlib.sha256(b"other bytes").hexdigest().encode())
    store = ImageStore(tmp_path / "images")
    with pytest.raises(IntegrityError):
        pull(cernvm_appliance(tmp_path / "config"), store, version=version, downloads=tmp_path / "dl")
    assert store.list() == []
    http_server.add(image_path + ".sha256", b"<html>not a digest</html>")
    with pytest.raises(IntegrityError, match="does not hold"):
        pull(cernvm_appliance(tmp_path / "config"), store, version=version, downloads=tmp_path / "dl")
