"""vmlog's pool on a host reached over qemu+ssh: upload, overlay, download and delete, checked by qemu-img here."""

from __future__ import annotations

import hashlib
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hypervisors import qemu_img
from hypervisors.errors import InvalidState, OperationFailed, ReportableError, VMExists
from hypervisors.libvirt import connection, remote_pool
from hypervisors.libvirt.remote_storage import RemoteStorage

pytestmark = pytest.mark.vm  # a real daemon behind a real sshd (no guest boots here)

MIB = 1024 * 1024


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def storage(remote_host) -> Iterator[RemoteStorage]:  # type: ignore[no-untyped-def]
    """A pool of the test's own on the "remote" host, in a directory this side never opens; removed afterwards."""
    libvirt = connection.import_libvirt()
    conn = connection.open_connection(libvirt, remote_host.uri)
    name = remote_pool.pool_name(f"test-{secrets.token_hex(4)}")
    store = RemoteStorage(conn, name, f"{remote_pool.SYSTEM_POOLS_DIR}/{name}")
    try:
        yield store
    finally:
        for vol in sorted(store.volumes(), key=lambda v: v.backing is None):  # overlays before their bases
            store.delete(vol.name)
        remote_pool.remove_pool(conn, name)
        conn.close()


@pytest.fixture(scope="module")
def base_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An 8 MiB raw image, mostly holes, with data at its start, middle and last byte."""
    path = tmp_path_factory.mktemp("remote-local") / "base.raw"
    with path.open("wb") as fh:
        fh.truncate(8 * MIB)
        for offset in (0, 3 * MIB + 4096, 8 * MIB - 1):
            fh.seek(offset)
            fh.write(secrets.token_bytes(1 if offset == 8 * MIB - 1 else 64 * 1024))
    return path


def test_pool_is_made_on_the_host_and_reports_its_space(storage: RemoteStorage) -> None:
    info = storage.info()
    assert info.active and info.name == storage.pool_name
    assert info.path.startswith(remote_pool.SYSTEM_POOLS_DIR)
    assert info.available > 0


def test_upload_then_download_gives_the_same_bytes_sparse(storage: RemoteStorage, base_image: Path,
                                                          tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    sent = storage.upload(base_image, "base.raw", verify=True, progress=lambda done, total: seen.append((done, total)))
    assert sent.sha256 == _sha256(base_image) and sent.size == 8 * MIB
    assert sent.sent_bytes < MIB  # the holes travelled as lengths, not zeros
    assert seen[-1] == (8 * MIB, 8 * MIB)
    vol = storage.volume("base.raw")
    assert vol.format == "raw" and vol.capacity == 8 * MIB
    assert "base.raw" in [v.name for v in storage.volumes()]

    copy = tmp_path / "copy.raw"
    got = storage.download("base.raw", copy)
    assert got.sha256 == sent.sha256 and _sha256(copy) == sent.sha256
    assert copy.stat().st_blocks * 512 < 2 * MIB  # it landed sparse here too
    assert qemu_img.compare(copy, "raw", base_image, "raw")


def test_a_second_volume_of_the_same_name_is_refused(storage: RemoteStorage, base_image: Path) -> None:
    if not storage.exists("base.raw"):
        storage.upload(base_image, "base.raw")
    with pytest.raises(VMExists):
        storage.upload(base_image, "base.raw")
    assert storage.volume("base.raw").capacity == 8 * MIB  # the first one is untouched


def test_overlay_made_on_the_host_reads_as_its_base(storage: RemoteStorage, base_image: Path,
                                                    tmp_path: Path) -> None:
    if not storage.exists("base.raw"):
        storage.upload(base_image, "base.raw")
    overlay = storage.create_overlay("live.qcow2", "base.raw", cluster_size=65536)
    base = storage.volume("base.raw")
    assert overlay.format == "qcow2" and overlay.capacity == 8 * MIB
    assert overlay.backing == base.path and overlay.backing_format == "raw"

    local = tmp_path / "live.qcow2"
    storage.download("live.qcow2", local)
    info = qemu_img.info(local, "qcow2")
    assert info["backing-filename"] == base.path and info["backing-filename-format"] == "raw"
    assert info["cluster-size"] == 65536
    qemu_img.rebase_unsafe(local, base_image, "raw")  # point the host's chain at our copy of the base
    assert qemu_img.compare(local, "qcow2", base_image, "raw")
    with pytest.raises(InvalidState, match="backing store of live.qcow2"):
        storage.delete("base.raw")
    storage.delete("live.qcow2")
    assert not storage.exists("live.qcow2")


@pytest.mark.skipif(shutil.which("qemu-io") is None, reason="qemu-io is missing: apt-get install -y qemu-utils")
def test_a_layer_made_here_chains_onto_its_base_on_the_host(storage: RemoteStorage, base_image: Path,
                                                            tmp_path: Path) -> None:
    """A qcow2 layer with a relative backing name keeps its chain once uploaded next to its base."""
    if not storage.exists("base.raw"):
        storage.upload(base_image, "base.raw")
    work = tmp_path / "work"
    work.mkdir()
    shutil.copyfile(base_image, work / "base.raw")
    layer = work / "layer.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", str(layer)],
                   check=True, cwd=work)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0xab 1M 128k", str(layer)],
                   check=True, capture_output=True)
    sent = storage.upload(layer, "layer.qcow2", verify=True)
    assert sent.sha256 == _sha256(layer)
    on_host = storage.volume("layer.qcow2")
    assert on_host.format == "qcow2" and on_host.backing == storage.volume("base.raw").path

    back = tmp_path / "back.qcow2"
    storage.download("layer.qcow2", back)
    assert _sha256(back) == sent.sha256
    qemu_img.rebase_unsafe(back, work / "base.raw", "raw")
    assert qemu_img.compare(back, "qcow2", layer, "qcow2")
    assert not qemu_img.compare(back, "qcow2", base_image, "raw")  # the layer's write is there
    storage.delete("layer.qcow2")


def test_a_base_goes_to_the_host_once_and_a_cut_copy_is_replaced(storage: RemoteStorage, base_image: Path,
                                                                 tmp_path: Path) -> None:
    digest = _sha256(base_image)
    short = tmp_path / "short.raw"
    short.write_bytes(base_image.read_bytes()[: 3 * MIB])  # what a killed upload leaves under the name
    storage.upload(short, "base-copy.raw")
    moved: list[int] = []
    vol = storage.ensure_copy(base_image, "base-copy.raw", digest, progress=lambda done, _total: moved.append(done))
    assert moved and vol.capacity == 8 * MIB
    moved.clear()
    assert storage.ensure_copy(base_image, "base-copy.raw", digest, progress=lambda d, _t: moved.append(d)) == vol
    assert moved == []  # already there: nothing travelled
    storage.delete("base-copy.raw")
    with pytest.raises(OperationFailed, match="not the"):
        storage.ensure_copy(base_image, "base-copy.raw", "0" * 64)
    assert not storage.exists("base-copy.raw")


def test_deleting_the_last_volumes_empties_the_pool(storage: RemoteStorage, base_image: Path) -> None:
    if not storage.exists("base.raw"):
        storage.upload(base_image, "base.raw")
    storage.delete("base.raw")
    assert storage.volumes() == []
    with pytest.raises(InvalidState, match="no volume"):
        storage.delete("base.raw")


def test_a_range_of_a_volume_reads_as_the_file_does(storage: RemoteStorage, base_image: Path) -> None:
    if not storage.exists("base.raw"):
        storage.upload(base_image, "base.raw")
    data = base_image.read_bytes()
    assert storage.read_range("base.raw", 0, 104) == data[:104]
    assert storage.read_range("base.raw", 3 * MIB, 8192) == data[3 * MIB : 3 * MIB + 8192]
    assert storage.read_range("base.raw", 8 * MIB - 4, 100) == data[-4:]  # fewer at the end
    assert storage.volume_path("base.raw") == storage.volume("base.raw").path


def test_an_overlay_grows_on_the_host_and_never_shrinks(storage: RemoteStorage, base_image: Path,
                                                         tmp_path: Path) -> None:
    if not storage.exists("base.raw"):
        storage.upload(base_image, "base.raw")
    storage.create_overlay("grow.qcow2", "base.raw", cluster_size=65536)
    assert storage.capacity("grow.qcow2") == 8 * MIB
    storage.resize("grow.qcow2", 12 * MIB)
    assert storage.capacity("grow.qcow2") == 12 * MIB
    with pytest.raises(ReportableError):
        storage.resize("grow.qcow2", 4 * MIB)
    storage.download("grow.qcow2", tmp_path / "grow.qcow2")
    assert qemu_img.info(tmp_path / "grow.qcow2", "qcow2")["virtual-size"] == 12 * MIB  # the file says so too
    storage.delete("grow.qcow2")
