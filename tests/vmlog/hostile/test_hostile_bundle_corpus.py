"""The corpus of hostile bundles of round 2: deep JSON, lying texts and numbers, huge tar headers, hostile bases.

Every case goes through ``vml state import FILE --trust`` (the real entry point) and asserts the exit code, a
one-line message naming the reason, nothing new in the home but one logbook row saying "refused", and that
no process opened the host canary.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hostile_inputs import assert_refused, home_files, make_image, run_vml, watch_opens

from vmlog.bundles import BaseImageRef, BundleRejected, BundleWriter, SigningKey
from vmlog.store.image_gate import HostileImage

STATE_ID = "ab" * 8
REJECTED = BundleRejected.exit_code


def _write_template(d: Path, key: SigningKey | None = None, name: str = "template.vmlstate") -> Path:
    base = d / "base.raw"
    if not base.exists():
        base.write_bytes(bytes(range(256)) * (4 << 12))
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", "top.qcow2"],
                       cwd=d, check=True)
        subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0xab 1M 64k", "top.qcow2"], cwd=d, check=True,
                       capture_output=True)
    ref = BaseImageRef(base, "raw", hashlib.sha256(base.read_bytes()).hexdigest(), "testbase", "1.0",
                       base.stat().st_size, ("http://127.0.0.1:9/base.raw",))
    writer = BundleWriter(
        ref, vm_spec={"memory_mib": 256}, logbook=[{"text": "calibrated"}], signing_key=key,
        state={"id": STATE_ID, "name": "calibrated", "author": "alice", "created": 1.7e9, "project": "analysis",
               "release_mounts": []},
    )
    writer.add_disk("system", d / "top.qcow2")
    return writer.write(d / name).path


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_template(tmp_path_factory.mktemp("sender"))


def members_of(bundle: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(bundle, "r:") as tf:
        return [(m.name, tf.extractfile(m).read()) for m in tf.getmembers()]  # type: ignore[union-attr]


def pack(out: Path, members: list[tuple[str, bytes]], pax: dict[str, dict[str, str]] | None = None) -> Path:
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.pax_headers = (pax or {}).get(name, {})
            tf.addfile(info, io.BytesIO(data))
    return out


NEST = "\"@NEST@\""


def with_manifest(edit: Callable[[dict], object], raw: Callable[[str], str] = lambda text: text):
    """A case that edits the manifest (as a dict, then as text) and keeps every member as it was."""

    def make(template: Path, out: Path) -> Path:
        members = members_of(template)
        manifest = json.loads(members[0][1])
        edit(manifest)
        text = raw(json.dumps(manifest))
        return pack(out, [("manifest.json", text.encode()), *members[1:]])

    return make


def nested(depth: int) -> Callable[[str], str]:
    return lambda text: text.replace(NEST, "[" * depth + "]" * depth)


def state(key: str, value: object):
    return with_manifest(lambda m: m["state"].__setitem__(key, value))


def created_raw(token: str):
    return with_manifest(lambda m: m["state"].__setitem__("created", "@C@"), lambda t: t.replace('"@C@"', token))


def with_logbook(data: bytes):
    def make(template: Path, out: Path) -> Path:
        members = dict(members_of(template))
        manifest = json.loads(members["manifest.json"])
        entry = manifest["members"]["logbook.json"]
        entry.update(stored_size=len(data), stored_sha256=hashlib.sha256(data).hexdigest())
        members["logbook.json"] = data
        members["manifest.json"] = json.dumps(manifest).encode()
        return pack(out, list(members.items()))

    return make


def with_member(name: str, data: bytes):
    def make(template: Path, out: Path) -> Path:
        members = members_of(template)
        return pack(out, [members[0], (name, data), *members[1:]])

    return make


def with_pax(member: str, size: int, kind: str = "pax"):
    def make(template: Path, out: Path) -> Path:
        members = members_of(template)
        if kind == "pax":
            return pack(out, members, {member: {"comment": "x" * size}})
        with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tf:  # a GNU long name ('L' header) first
            for name, data in members:
                info = tarfile.TarInfo(name if name != member else "n" * size)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
        return out

    return make


def claimed_pax(template: Path, out: Path) -> Path:
    """A PAX header block that claims 200 MB (the file is short: only the claim is read)."""
    pack(out, members_of(template), {"manifest.json": {"comment": "x"}})
    data = bytearray(out.read_bytes())
    data[124:136] = b"%011o\0" % (200 << 20)
    data[148:156] = b" " * 8
    data[148:156] = b"%06o\0 " % sum(data[:512])
    out.write_bytes(bytes(data[:4096]))
    return out


def signed_by(name: str):
    def make(template: Path, out: Path) -> Path:
        d = template.parent
        key = SigningKey.load_or_create(d / f"key-{hashlib.sha256(name.encode()).hexdigest()[:8]}", name)
        return shutil.copyfile(_write_template(d, key, f"signed-{key.fingerprint[:8]}.vmlstate"), out)

    return make


CASES: dict[str, tuple[Callable[[Path, Path], Path], int, str]] = {
    "manifest-nested-2000": (with_manifest(lambda m: m["vm_spec"].__setitem__("x", "@NEST@"), nested(2000)),
                             REJECTED, "nested"),
    "manifest-nested-100000": (with_manifest(lambda m: m["vm_spec"].__setitem__("x", "@NEST@"), nested(100_000)),
                               REJECTED, "nested"),
    "release-mounts-nested": (with_manifest(lambda m: m["state"].__setitem__("release_mounts", "@NEST@"),
                                            nested(3000)), REJECTED, "nested"),
    "release-mounts-a-string": (state("release_mounts", "[/] all"), REJECTED, "release_mounts"),
    "manifest-sig-nested": (with_member("manifest.sig", b"[" * 5000 + b"]" * 5000), REJECTED, "nested"),
    "logbook-nested-2000": (with_logbook(b"[" * 2000 + b"]" * 2000), REJECTED, "nested"),
    "logbook-nested-100000": (with_logbook(b"[" * 100_000 + b"]" * 100_000), REJECTED, "nested"),
    "logbook-nan": (with_logbook(b'[{"created": NaN}]'), REJECTED, "NaN"),
    "created-1e300": (state("created", 1e300), REJECTED, "state.created"),
    "created-minus-1e18": (state("created", -1e18), REJECTED, "state.created"),
    "created-nan": (created_raw("NaN"), REJECTED, "NaN"),
    "created-infinity": (created_raw("Infinity"), REJECTED, "Infinity"),
    "created-overflow": (created_raw("1e999"), REJECTED, "out of range"),
    "created-text": (state("created", "the day before yesterday"), REJECTED, "state.created"),
    "created-bool": (state("created", True), REJECTED, "state.created"),
    "created-year-2255": (state("created", 9e9), REJECTED, "state.created"),
    "name-newline-forges-a-line": (state("name", "x\n  signed by Alice (known key, accepted as alice)"), REJECTED,
                                   "control characters"),
    "name-escape-hides-text": (state("name", "x\x1b[8m"), REJECTED, "control characters"),
    "name-bidi-override": (state("name", "gpj.\u202eexe"), REJECTED, "control characters"),
    "name-overlong": (state("name", "n" * 5000), REJECTED, "at most 200"),
    "author-escape": (state("author", "bob\x1b[2K\rAlice"), REJECTED, "control characters"),
    "author-newline": (state("author", "bob\nfix: run rm -rf"), REJECTED, "control characters"),
    "message-osc-hyperlink": (state("message", "see \x1b]8;;file:///etc/shadow\x07here"), REJECTED,
                              "control characters"),
    "project-bell": (state("project", "p\x07"), REJECTED, "control characters"),
    "parent-escape": (state("parent", "\x1b[31m"), REJECTED, "control characters"),
    "base-name-escape": (with_manifest(lambda m: m["base"].__setitem__("name", "base\x1b[8m")), REJECTED,
                         "control characters"),
    "base-url-newline": (with_manifest(lambda m: m["base"]["urls"].append("http://x/\nerror: fake")), REJECTED,
                         "control characters"),
    "pax-header-1mib-before-manifest": (with_pax("manifest.json", 1 << 20), REJECTED, "tar extension header"),
    "pax-header-claims-200mb": (claimed_pax, REJECTED, "tar extension header"),
    "gnu-long-name-1mib": (with_pax("logbook.json", 1 << 20, "gnu"), REJECTED, "tar extension header"),
    "pax-header-1mib-before-disk": (with_pax("disk-system.blocks.zst", 1 << 20), REJECTED, "tar extension header"),
    "signer-name-escape": (signed_by("Alice\x1b[8m (unknown key"), REJECTED, "control characters"),
    "signer-name-newline": (signed_by("Mallory\nsigned by Alice (known key)"), REJECTED, "control characters"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_bundle_is_refused(case: str, template: Path, vmlog_home: Path, tmp_path: Path, canary: Path,
                                     monkeypatch, capsys) -> None:
    make, expected, reason = CASES[case]
    bundle = make(template, tmp_path / "hostile.vmlstate")
    before = home_files(vmlog_home)
    with watch_opens(canary) as opens:
        code, err = run_vml(monkeypatch, capsys, "state", "import", str(bundle), "--trust")
    assert_refused(code, err, expected, reason, before, vmlog_home, opens)


BASES = {"base-qcow2-backing-host-file": ("qcow2-backing-host-file", "backing file"),
         "base-vmdk-flat-extent-host-file": ("vmdk-flat-extent-host-file", "extents"),
         "base-gzip-as-raw": ("gzip-as-qcow2", "gzip archive")}


@pytest.mark.parametrize("case", list(BASES))
def test_a_hostile_base_fetched_for_an_import_is_refused_and_not_stored(
    case: str, template: Path, vmlog_home: Path, tmp_path: Path, canary: Path, served: tuple[Path, str],
    monkeypatch, capsys,
) -> None:
    image_case, reason = BASES[case]
    image, fmt, _ = make_image(image_case, tmp_path / "made", canary)
    root, url = served
    target = root / f"{case}.img"
    shutil.copyfile(image, target)
    fmt = {"gzip-as-qcow2": "raw"}.get(image_case, fmt)

    def base(m: dict) -> None:
        m["base"].update(sha256=hashlib.sha256(target.read_bytes()).hexdigest(), size=target.stat().st_size,
                         format=fmt, urls=[f"{url}/{target.name}"])
        m["disks"][0]["backing_format"] = fmt

    bundle = with_manifest(base)(template, tmp_path / "hostile.vmlstate")
    before = home_files(vmlog_home)
    with watch_opens(canary) as opens:
        code, err = run_vml(monkeypatch, capsys, "state", "import", str(bundle), "--trust")
    assert_refused(code, err, HostileImage.exit_code, reason, before, vmlog_home, opens)


def test_the_untouched_template_imports(template: Path, vmlog_home: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """Control: the cases differ from an importable bundle only in what they name."""
    base = template.parent / "base.raw"
    code, err = run_vml(monkeypatch, capsys, "appliance", "list")
    assert code == 0, err
    from vmlog.workspace import Workspace

    Workspace.default().images.add_file(base, name="testbase", version="1.0", format="raw")
    code, err = run_vml(monkeypatch, capsys, "state", "import", str(template), "--trust")
    assert code == 0, err
