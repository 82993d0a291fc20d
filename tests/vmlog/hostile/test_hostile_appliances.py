"""The corpus of hostile images from outside: catalog images, local files, Vagrant boxes.

Each case asserts the exit code, a one-line message naming the reason, that the home holds nothing new but one
logbook row saying "refused", and (inotify on a canary file) that no process opened the host file the input names.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from hostile_inputs import IMAGES, assert_refused, home_files, make_box, make_image, qemu_create, run_vml, watch_opens

from vmlog.errors import IntegrityError, InvalidInput
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


BOX_CASES = ["box-img-backing-host-file", "box-img-data-file", "box-img-gzip-bomb-stand-in", "box-img-raw-not-qcow2",
             "box-img-vmdk-descriptor", "box-img-huge-virtual-size", "box-virtualbox-flat-extent",
             "box-virtualbox-parent", "box-metadata-nested", "box-metadata-not-object", "box-without-metadata",
             "box-member-traversal", "box-not-an-archive"]


@pytest.mark.parametrize("case", BOX_CASES)
def test_a_hostile_box_is_refused_and_not_stored(case: str, vmlog_home: Path, tmp_path: Path, canary: Path,
                                                 served: tuple[Path, str], monkeypatch, capsys) -> None:
    if case == "box-not-an-archive":
        box, key, expected, reason = qemu_create(tmp_path / "x.box", "qcow2"), "box/libvirt", HostileImage.exit_code, \
            "declared a Vagrant box"
    else:
        members, key, expected, reason = _box_cases(tmp_path / "made", canary)[case]
        box = make_box(tmp_path / "evil.box", members)
    provider = key.split("/")[1]
    register_catalog(vmlog_home, served, "evilbox", "box", box, box_provider=provider)
    before = home_files(vmlog_home)
    with watch_opens(canary) as opens:
        code, err = run_vml(monkeypatch, capsys, "appliance", "pull", "evilbox", "--format", key)
    assert_refused(code, err, expected, reason, before, vmlog_home, opens)


# -- controls: the harness sees an open, and a benign image of each kind goes through -------------------------
def test_the_canary_watch_sees_an_open_by_a_child_process(canary: Path) -> None:
    import subprocess

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
