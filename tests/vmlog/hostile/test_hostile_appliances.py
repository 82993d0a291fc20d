"""The corpus of hostile images from outside: catalog images, local files, Vagrant boxes.

Each case asserts the exit code, a one-line message naming the reason, that the home holds nothing new but one
logbook row saying "refused", and (inotify on a canary file) that no process opened the host file the input names.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hostile_inputs import (
    IMAGES,
    MIB,
    assert_refused,
    home_files,
    make_box,
    make_image,
    qemu_create,
    repeated,
    run_vml,
    watch_opens,
    write_box,
)

from vmlog.errors import IntegrityError, InvalidInput
from vmlog.store.expansion import EXPANSION_RATIO
from vmlog.store.image_gate import HostileImage

CATALOG_FORMATS = ("qcow2", "raw", "hdd", "img", "iso", "vmdk", "vdi")


def register_catalog(home: Path, served: tuple[Path, str], name: str, fmt: str, data_file: Path, **extra) -> None:
    """A catalog (a local file) offering appliance ``name`` whose ``fmt`` image is ``data_file``, served over HTTP."""
    root, url = served
    target = root / f"{hashlib.sha256(str(data_file).encode()).hexdigest()[:12]}-{data_file.name}"
    shutil.copyfile(data_file, target)
    image = {"url": f"{url}/{target.name}", "digest": {"sha256": hashlib.sha256(target.read_bytes()).hexdigest()},
             "size": target.stat().st_size, **extra}
    catalog = {"vmlog_catalog": 1, "appliances": [{"name": name, "versions": [
        {"version": "1.0", "images": {fmt: image}}]}]}
    path = home / "hostile-catalog.json"
    path.write_text(json.dumps(catalog))
    (home / "config").mkdir(parents=True, exist_ok=True)
    registered = {"catalogs": [{"name": "hostile", "location": str(path)}]}
    (home / "config" / "catalogs.json").write_text(json.dumps(registered))


@pytest.mark.parametrize("case", [c for c, (_m, fmt, _r) in IMAGES.items() if fmt in CATALOG_FORMATS])
def test_a_hostile_catalog_image_is_refused(case: str, vmlog_home: Path, tmp_path: Path, canary: Path,
                                            served: tuple[Path, str], monkeypatch, capsys) -> None:
    image, fmt, reason = make_image(case, tmp_path / "made", canary)
    register_catalog(vmlog_home, served, "evil", fmt, image)
    before = home_files(vmlog_home)
    with watch_opens(canary) as opens:
        code, err = run_vml(monkeypatch, capsys, "appliance", "pull", "evil")
    assert_refused(code, err, HostileImage.exit_code, reason, before, vmlog_home, opens)


LOCAL_SUFFIX = {"qcow2": ".qcow2", "vmdk": ".vmdk", "vdi": ".vdi"}

# A local file declares nothing: its bytes give its format. So a clean image under another name is taken in the
# format its header shows, and the corpus's other cases are refused for what the bytes are, as listed here:
# case -> None (accepted, in the format named) or (exit code, reason, what the logbook row says).
LOCAL_OUTCOME: dict[str, tuple[int, str, str] | str] = {
    "qcow2-declared-raw": (HostileImage.exit_code, "backing file", "refused"),
    "qcow2-declared-hdd": "qcow2", "qcow2-declared-vmdk": "qcow2", "qcow2-declared-vdi": "qcow2",
    "qcow2-declared-iso": "qcow2", "vmdk-declared-qcow2": "vmdk", "vdi-declared-qcow2": "vdi",
    "vpc-declared-raw": "vpc", "vhdx-declared-img": "vhdx",
    "vmdk-split-sparse-extents": (IntegrityError.exit_code, "not a file beside", ""),
    "vmdk-vmfs-extent": (IntegrityError.exit_code, "createType 'vmfs'", ""),
    "vmdk-descriptor-declared-raw": (HostileImage.exit_code, "extents must be files of the package", "refused"),
    **{case: (InvalidInput.exit_code, f"a {kind} file, not a disk image", "")
       for case, kind in (("gzip-as-qcow2", "gzip"), ("xz-as-qcow2", "xz"), ("zstd-as-raw", "zstd"),
                          ("bzip2-as-vmdk", "bzip2"))},
    "tar-as-raw": (IntegrityError.exit_code, "0 OVF descriptors", ""),
    "ova-as-qcow2": (IntegrityError.exit_code, "not XML", ""),
}


@pytest.mark.parametrize("case", list(IMAGES))
def test_a_local_image_for_project_new_is_typed_by_its_bytes_or_refused(case: str, vmlog_home: Path, tmp_path: Path,
                                                          canary: Path, monkeypatch, capsys) -> None:
    image, fmt, reason = make_image(case, tmp_path / "made", canary)
    local = image.rename(image.with_name("disk" + LOCAL_SUFFIX.get(fmt, ".img")))
    if fmt not in LOCAL_SUFFIX and fmt not in ("raw", "hdd", "img", "iso"):
        pytest.skip(f"a local file cannot declare {fmt}")
    expected = LOCAL_OUTCOME.get(case, (HostileImage.exit_code, reason, "refused"))
    before = home_files(vmlog_home)
    with watch_opens(canary) as opens:
        code, err = run_vml(monkeypatch, capsys, "project", "new", "p", str(local))
    if isinstance(expected, str):
        assert code == 0, err
        stored = [json.loads(p.read_text()) for p in (vmlog_home / "data" / "images").glob("*/meta.json")]
        assert [s.get("format") for s in stored] == [expected], stored
        assert opens == []
        return
    code_expected, reason_expected, row_says = expected
    assert_refused(code, err, code_expected, reason_expected, before, vmlog_home, opens, row_says=row_says)


def _box_cases(d: Path, canary: Path) -> dict[str, tuple[dict[str, bytes], str, int, str]]:
    meta = json.dumps({"provider": "libvirt", "format": "qcow2", "virtual_size": 1}).encode()
    vb_meta = json.dumps({"provider": "virtualbox"}).encode()

    def image(case: str) -> bytes:
        return make_image(case, d / case, canary)[0].read_bytes()

    return {
        "box-img-backing-host-file": ({"metadata.json": meta, "box.img": image("qcow2-backing-host-file")},
                                      "box/libvirt", HostileImage.exit_code, "backing file"),
        "box-img-data-file": ({"metadata.json": meta, "box.img": image("qcow2-data-file")}, "box/libvirt",
                              HostileImage.exit_code, "data file"),
        "box-img-gzip-bomb-stand-in": ({"metadata.json": meta, "box.img": image("gzip-as-qcow2")}, "box/libvirt",
                                       HostileImage.exit_code, "gzip archive"),
        "box-img-raw-not-qcow2": ({"metadata.json": meta, "box.img": b"\0" * 65536}, "box/libvirt",
                                  HostileImage.exit_code, "header says raw"),
        "box-img-vmdk-descriptor": ({"metadata.json": meta, "box.img": image("vmdk-flat-extent-host-file")},
                                    "box/libvirt", HostileImage.exit_code, "vmdk-descriptor"),
        "box-img-huge-virtual-size": ({"metadata.json": meta, "box.img": image("qcow2-virtual-size-2^60")},
                                      "box/libvirt", HostileImage.exit_code, "virtual size"),
        "box-virtualbox-flat-extent": ({"metadata.json": vb_meta, "disk.vmdk": image("vmdk-flat-extent-host-file")},
                                       "box/virtualbox", HostileImage.exit_code, "extents"),
        "box-virtualbox-parent": ({"metadata.json": vb_meta, "disk.vmdk": image("vmdk-parent-file-name-hint")},
                                  "box/virtualbox", HostileImage.exit_code, "parent"),
        "box-metadata-nested": ({"metadata.json": b"[" * 5000 + b"]" * 5000, "box.img": b"x"}, "box/libvirt",
                                IntegrityError.exit_code, "nested"),
        "box-metadata-not-object": ({"metadata.json": b"[1, 2]", "box.img": b"x"}, "box/libvirt",
                                    IntegrityError.exit_code, "not a JSON object"),
        "box-without-metadata": ({"box.img": image("qcow2-backing-host-file")}, "box/libvirt",
                                 IntegrityError.exit_code, "no metadata.json"),
        "box-member-traversal": ({"metadata.json": meta, "../../box.img": b"x"}, "box/libvirt",
                                 IntegrityError.exit_code, "outside the box"),
    }


def _bomb_boxes(d: Path) -> dict[str, tuple[Callable[[Path], Path], str]]:
    """Boxes (and an OVA) that would expand beyond what they hold or declare: (maker(path) -> file, reason)."""
    d.mkdir(parents=True, exist_ok=True)
    meta = json.dumps({"provider": "libvirt", "format": "qcow2", "virtual_size": 1}).encode()
    raw_meta = json.dumps({"provider": "libvirt", "format": "raw", "virtual_size": 1}).encode()
    small = qemu_create(d / "small.qcow2", "qcow2").read_bytes()  # 1 MiB virtual
    ragged = (REAL_OVA / OVF_FILE).read_bytes()
    gib_header = qemu_create(d / "gib.qcow2", "qcow2", size="1G").read_bytes()[:4096]  # 1 GiB virtual
    return {
        # 100 MiB of non-zero data in 100 KiB of gzip (1000x), behind a qcow2 header that would allow its length
        "box-img-data-bomb-1000x": (lambda p: write_box(p, [("metadata.json", meta, None), (
            "box.img", repeated(b"\x01", 100 * MIB, head=gib_header), 100 * MIB)]), "expands to more than"),
        # a tar header claiming 1 TiB for a 1 MiB qcow2 (the archive ends after the image)
        "box-img-tar-header-declares-1tib": (lambda p: write_box(p, [("metadata.json", meta, None), (
            "box.img", small, 1 << 40)]), "1024.0 GiB in its tar header"),
        # an uncompressed box whose header claims 8 GiB for 4 KiB
        "box-plain-tar-header-declares-8gib": (lambda p: write_box(p, [("metadata.json", raw_meta, None), (
            "box.img", b"\x01" * 4096, 8 << 30)], compress=False), "left in the archive"),
        # 128 MiB of zeros (holes, but still a bomb) behind a qcow2 of 1 MiB virtual size
        "box-img-zero-run-bomb": (lambda p: write_box(p, [("metadata.json", meta, None), (
            "box.img", repeated(b"\0", 128 * MIB, head=small), 128 * MIB)]), "virtual size of 1.0 MiB"),
        # a raw disk whose tar header claims 4 GiB where metadata.json says 1 GiB (cut after 128 KiB of zeros)
        "box-raw-beyond-metadata-virtual-size": (lambda p: write_box(p, [("metadata.json", raw_meta, None), (
            "box.img", bytes(128 << 10), 4 << 30)]), "metadata.json a virtual size of 1.0 GiB"),
        # an OVA (a plain tar) whose disk's header claims 8 GiB for the 4 KiB that follow
        "ova-disk-tar-header-declares-8gib": (lambda p: write_box(p, [(f"{RAGGED}.ovf", ragged, None), (
            f"{RAGGED}-disk001.vmdk", qemu_create(d / "d.vmdk", "vmdk").read_bytes()[:4096], 8 << 30)],
            compress=False), "left in the archive"),
    }


BOMB_CASES = ["box-img-data-bomb-1000x", "box-img-tar-header-declares-1tib", "box-plain-tar-header-declares-8gib",
              "box-img-zero-run-bomb", "box-raw-beyond-metadata-virtual-size", "ova-disk-tar-header-declares-8gib"]
REAL_OVA = Path(__file__).resolve().parents[2] / "fixtures" / "real" / "ova"
OVF_FILE, RAGGED = "virtualbox-ragged-edge-box-ovf10.ovf", "RAGged Edge Box"  # the disk it names: RAGGED-disk001
BOX_CASES = ["box-img-backing-host-file", "box-img-data-file", "box-img-gzip-bomb-stand-in", "box-img-raw-not-qcow2",
             "box-img-vmdk-descriptor", "box-img-huge-virtual-size", "box-virtualbox-flat-extent",
             "box-virtualbox-parent", "box-metadata-nested", "box-metadata-not-object", "box-without-metadata",
             "box-member-traversal", "box-not-an-archive", *BOMB_CASES]


@pytest.mark.parametrize("case", BOX_CASES)
def test_a_hostile_box_is_refused_and_not_stored(case: str, vmlog_home: Path, tmp_path: Path, canary: Path,
                                                 served: tuple[Path, str], monkeypatch, capsys) -> None:
    if case == "box-not-an-archive":
        box, key, expected, reason = qemu_create(tmp_path / "x.box", "qcow2"), "box/libvirt", HostileImage.exit_code, \
            "declared a Vagrant box"
    elif case in BOMB_CASES:
        maker, reason = _bomb_boxes(tmp_path / "made")[case]
        key = "ova" if case.startswith("ova-") else "box/libvirt"
        box, expected = maker(tmp_path / f"evil.{key[:3]}"), HostileImage.exit_code
    else:
        members, key, expected, reason = _box_cases(tmp_path / "made", canary)[case]
        box = make_box(tmp_path / "evil.box", members)
    kind, _, provider = key.partition("/")
    register_catalog(vmlog_home, served, "evilbox", kind, box, **({"box_provider": provider} if provider else {}))
    before = home_files(vmlog_home)
    with watch_opens(canary) as opens:
        code, err = run_vml(monkeypatch, capsys, "appliance", "pull", "evilbox", "--format", key)
    assert_refused(code, err, expected, reason, before, vmlog_home, opens)


# -- controls: the harness sees an open, and a benign image of each kind goes through -------------------------
def test_a_highly_compressible_sparse_box_is_accepted(vmlog_home: Path, tmp_path: Path, served: tuple[Path, str],
                                                      monkeypatch, capsys) -> None:
    """A raw ext4 disk of 256 MiB holding a few MiB of files: it expands far more than the ratio limit allows data
    to, but its zero runs are holes, counted against its length, not as data."""
    disk = tmp_path / "disk.raw"
    subprocess.run(["truncate", "-s", "256M", str(disk)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(Path(__file__).resolve().parents[3] / "vmlog"), str(disk)],
                   check=True, capture_output=True)
    meta = json.dumps({"provider": "libvirt", "format": "raw", "virtual_size": 1}).encode()

    def chunks() -> Iterator[bytes]:
        with open(disk, "rb") as fh:
            while chunk := fh.read(MIB):
                yield chunk

    box = write_box(tmp_path / "sparse.box", [("metadata.json", meta, None), ("box.img", chunks(), 256 * MIB)])
    assert disk.stat().st_size > EXPANSION_RATIO * box.stat().st_size  # it expands more than data may
    register_catalog(vmlog_home, served, "sparse", "box", box, box_provider="libvirt")
    code, err = run_vml(monkeypatch, capsys, "appliance", "pull", "sparse", "--format", "box/libvirt")
    assert code == 0, err
    stored = list((vmlog_home / "data" / "images").glob("*/sparse-*.raw"))
    assert [p.stat().st_size for p in stored] == [256 * MIB], stored
    assert stored[0].stat().st_blocks * 512 < 64 * MIB  # stored sparse


def test_the_canary_watch_sees_an_open_by_a_child_process(canary: Path) -> None:
    with watch_opens(canary) as opens:
        subprocess.run(["cat", str(canary)], check=True, capture_output=True)
    assert opens


@pytest.mark.parametrize("fmt", ["qcow2", "vmdk", "vdi"])
def test_a_benign_catalog_image_is_pulled(fmt: str, vmlog_home: Path, tmp_path: Path, served: tuple[Path, str],
                                          monkeypatch, capsys) -> None:
    image = qemu_create(tmp_path / f"good.{fmt}", fmt)
    register_catalog(vmlog_home, served, "good", fmt, image)
    code, err = run_vml(monkeypatch, capsys, "appliance", "pull", "good")
    assert code == 0, err


@pytest.mark.parametrize("document", ["[" * 100_000 + "]" * 100_000, '{"vmlog_catalog": 1, "appliances": "evil"}',
                                      '{"vmlog_catalog": 1, "appliances": [{"name": "x", "versions": "1"}]}',
                                      '{"vmlog_catalog": 1, "appliances": [{"name": "x", "versions": [{"version": '
                                      '"1", "boot": "string", "images": {}}]}]}'])
def test_a_registered_catalog_turned_hostile_does_not_break_the_listing(document: str, vmlog_home: Path,
                                                                        monkeypatch, capsys) -> None:
    path = vmlog_home / "catalog.json"
    path.write_text(document)
    (vmlog_home / "config").mkdir(parents=True, exist_ok=True)
    registered = {"catalogs": [{"name": "turned", "location": str(path)}]}
    (vmlog_home / "config" / "catalogs.json").write_text(json.dumps(registered))
    code, err = run_vml(monkeypatch, capsys, "appliance", "list")
    assert code == 0 and "Traceback" not in err, err
    code, err = run_vml(monkeypatch, capsys, "appliance", "info", "vmlog-test")
    assert code == 0, err
