"""Bases any colleague can resolve: a Vagrant box's disk, a converted download and a local file each
round-trip to a second home that never saw the base, over a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
from chain_helpers import write_pattern
from exchange_helpers import context_at, serve_directory

from hypervisors import qemu_img
from vmlog.app import exchange, projects
from vmlog.app import states as app_states
from vmlog.appliances import download
from vmlog.appliances.box import extract_box
from vmlog.bundles import BundleRejected
from vmlog.errors import NotFound
from vmlog.projects.bundle_base import ensure_base
from vmlog.projects.driver import no_progress
from vmlog.store import provenance
from vmlog.store.images import StoredImage
from vmlog.workspace import Workspace


def _make_box(www: Path, base_image: Path) -> Path:
    """A libvirt Vagrant box (metadata.json and a qcow2 box.img) of ``base_image``, gzipped like real boxes."""
    disk = www / "box.img"
    qemu_img.convert(base_image, disk, src_format="raw", dest_format="qcow2")
    box = www / "test.box"
    with tarfile.open(box, "w:gz") as tf:
        meta = json.dumps({"provider": "libvirt", "format": "qcow2", "virtual_size": 1}).encode()
        info = tarfile.TarInfo("metadata.json")
        info.size = len(meta)
        tf.addfile(info, io.BytesIO(meta))
        tf.add(disk, arcname="box.img")
    disk.unlink()
    return box


def _pull_box(ctx: Workspace, box_url: str, box_sha256: str) -> StoredImage:
    """What ``vml appliance pull`` does with a box: fetch it verified, store its disk, record the provenance."""
    box = download.fetch(
        [box_url], ctx.images, name="testbox", version="1", format="box", digest=("sha256", box_sha256)
    )
    work = ctx.home.cache / "unbox"
    work.mkdir(parents=True)
    disk_path, fmt, _meta = extract_box(box.path, "libvirt", work)
    disk = ctx.images.add_file(disk_path, name="testbox", version="1", format=fmt, urls=box.urls, move=True)
    provenance.record_unboxed(ctx.images.root, disk, box, "libvirt")  # the one call pull.py makes
    ctx.images.remove(box.sha256)
    return disk


def _save_two_states(ctx: Workspace, image_sha256: str) -> None:
    projects.new_project("analysis", image_sha256, ctx=ctx)
    files = ctx.projects.get("analysis")
    write_pattern(files.layers.path(files.load().live["system"]), 0x22, 64 * 1024, 128 * 1024)
    app_states.save_state("analysis", "s1", ctx=ctx)


def _round_trip(sender: Workspace, tmp_path: Path, **import_args) -> exchange.ImportResult:
    bundle = exchange.export_state("analysis", "s1", tmp_path, ctx=sender)
    receiver = context_at(tmp_path / "home-b")
    assert receiver.images.list() == []
    result = exchange.import_state(bundle.path, trust=True, ctx=receiver, **import_args)
    sender_files, receiver_files = sender.projects.get("analysis"), receiver.projects.get(result.project)
    sender_layer = sender_files.layers.path(sender_files.states()[result.state_id].layers["system"])
    receiver_layer = receiver_files.layers.path(receiver_files.states()[result.state_id].layers["system"])
    assert qemu_img.compare(receiver_layer, "qcow2", sender_layer, "qcow2")
    return result


def test_vagrant_box_base_is_rebuilt_from_the_box(tmp_path: Path, base_image: Path) -> None:
    www = tmp_path / "www"
    www.mkdir()
    box = _make_box(www, base_image)
    with serve_directory(www) as url:
        sender = context_at(tmp_path / "home-a")
        disk = _pull_box(sender, f"{url}/test.box", hashlib.sha256(box.read_bytes()).hexdigest())
        _save_two_states(sender, disk.sha256)
        result = _round_trip(sender, tmp_path)
        assert result.base_downloaded
    receiver = context_at(tmp_path / "home-b")
    image = receiver.images.find(disk.sha256)
    assert image is not None and image.format == "qcow2"
    assert [i.sha256 for i in receiver.images.list()] == [disk.sha256]  # the box itself was dropped
    record = provenance.load(receiver.images.root, disk.sha256)
    assert record is not None and record.steps == ({"op": "box-member", "provider": "libvirt"},)


def test_converted_base_is_rebuilt_by_converting_the_download(tmp_path: Path, base_image: Path) -> None:
    www = tmp_path / "www"
    www.mkdir()
    published = www / "base.qcow2"
    qemu_img.convert(base_image, published, src_format="raw", dest_format="qcow2", compress=True)
    with serve_directory(www) as url:
        sender = context_at(tmp_path / "home-a")
        src = download.fetch([f"{url}/base.qcow2"], sender.images, name="conv", version="1", format="qcow2",
                             digest=("sha256", hashlib.sha256(published.read_bytes()).hexdigest()))
        raw = tmp_path / "converted.raw"
        qemu_img.convert(src.path, raw, src_format="qcow2", dest_format="raw")
        disk = sender.images.add_file(raw, name="conv", version="1", format="raw", urls=src.urls)
        provenance.record(sender.images.root, provenance.Provenance(
            ("sha256", src.sha256), src.size, "base.qcow2", "qcow2", disk.sha256, disk.size, "raw",
            src.urls, ({"op": "convert", "format": "raw"},),
        ))
        sender.images.remove(src.sha256)
        _save_two_states(sender, disk.sha256)
        _round_trip(sender, tmp_path)
    receiver = context_at(tmp_path / "home-b")
    assert [i.sha256 for i in receiver.images.list()] == [disk.sha256]


def test_local_file_base_names_the_file_and_takes_it_with_base(tmp_path: Path, base_image: Path) -> None:
    sender = context_at(tmp_path / "home-a")
    disk = sender.images.add_file(base_image, name="mylocal", version="2", format="raw")  # no URL
    _save_two_states(sender, disk.sha256)
    bundle = exchange.export_state("analysis", "s1", tmp_path, ctx=sender)
    receiver = context_at(tmp_path / "home-b")
    with pytest.raises(NotFound) as info:
        exchange.import_state(bundle.path, trust=True, ctx=receiver)
    assert disk.sha256 in info.value.message and "mylocal 2" in info.value.message
    assert "--base FILE" in (info.value.fix or "")
    assert receiver.projects.names() == [] and receiver.images.list() == []

    verified = exchange.open_bundle(bundle.path, ctx=receiver).verify()
    wrong = tmp_path / "wrong.img"
    wrong.write_bytes(b"\1" * base_image.stat().st_size)
    with pytest.raises(BundleRejected) as bad:
        ensure_base(receiver.images, receiver.home.downloads, verified.base, insecure=False, progress=no_progress,
                    base_file=wrong)
    assert bad.value.reason == "base-digest" and receiver.images.list() == []
    copy = Path(shutil.copy(base_image, tmp_path / "from-colleague.img"))
    image, _ = ensure_base(receiver.images, receiver.home.downloads, verified.base, insecure=False,
                           progress=no_progress, base_file=copy)
    assert image.sha256 == disk.sha256
    result = exchange.import_state(bundle.path, trust=True, ctx=receiver)  # the base is now in the store
    assert not result.base_downloaded


def test_tampered_provenance_is_refused_before_any_download(tmp_path: Path) -> None:
    base = {"sha256": "a" * 64, "format": "raw", "size": 1, "urls": [],
            "provenance": {"artefact": {"urls": ["file:///etc/shadow"], "digest": {"algorithm": "sha256",
                           "value": "b" * 64}, "size": 1, "name": "x", "format": "box"},
                           "steps": [{"op": "box-member", "provider": "libvirt"}],
                           "disk": {"sha256": "a" * 64, "size": 1, "format": "raw"}}}
    receiver = context_at(tmp_path / "home-b")
    with pytest.raises(BundleRejected) as info:
        ensure_base(receiver.images, receiver.home.downloads, base, insecure=False, progress=no_progress)
    assert info.value.reason == "manifest"
    base["provenance"]["artefact"]["urls"] = ["http://127.0.0.1:9/x.box"]
    base["provenance"]["steps"] = [{"op": "run-a-script", "provider": "libvirt"}]
    with pytest.raises(BundleRejected):
        ensure_base(receiver.images, receiver.home.downloads, base, insecure=False, progress=no_progress)
    assert receiver.images.list() == []
