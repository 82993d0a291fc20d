"""Checks travel with an exported state: the receiver's project gets them, and a malformed member refuses the bundle."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from vmlog.app import checks, exchange, projects
from vmlog.app import states as app_states
from vmlog.errors import InvalidInput
from vmlog.paths import home_under
from vmlog.workspace import Workspace

MIB = 1 << 20



@pytest.fixture
def sender(tmp_path: Path) -> Workspace:
    """Project ``analysis`` with one saved state and a check that pins what it must print."""
    ctx = Workspace.of(home_under(tmp_path / "home-a"))
    base = tmp_path / "base.raw"
    base.write_bytes(os.urandom(MIB) + b"\0" * MIB)
    image = ctx.images.add_file(base, name="testbase", version="1", format="raw")
    projects.new_project("analysis", image.sha256, ctx=ctx)
    files = ctx.projects.get("analysis")
    live = files.layers.path(files.load().live["system"])
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x42 0 64k", str(live)], check=True, capture_output=True)
    app_states.save_state("analysis", "s1", ctx=ctx)
    checks.add_check("mtop", "cat /data/mtop", checks.expectation(number=172.4, tolerance="0.5"),
                     project="analysis", ctx=ctx)
    return ctx


def receiver_with_base(tmp_path: Path, sender: Workspace) -> Workspace:
    receiver = Workspace.of(home_under(tmp_path / "home-b"))
    base = sender.images.list()[0]
    receiver.images.add_file(base.path, name="testbase", version="1", format="raw")
    return receiver


def test_an_imported_state_brings_its_projects_checks(sender: Workspace, tmp_path: Path) -> None:
    bundle = exchange.export_state("analysis", "s1", tmp_path, ctx=sender).path
    with tarfile.open(bundle) as tf:
        assert "checks.json" in tf.getnames()
    receiver = receiver_with_base(tmp_path, sender)
    result = exchange.import_state(bundle, trust=True, ctx=receiver)
    listed = checks.list_checks(project=result.project, ctx=receiver)
    assert [c.to_dict()["name"] for c in listed.checks] == ["mtop"]
    (row,) = [e for e in receiver.logbook.entries(project=result.project) if e.action == "state import"]
    assert "1 check(s) added" in (row.message or "")


def test_a_bundle_of_a_project_without_checks_has_no_checks_member(sender: Workspace, tmp_path: Path) -> None:
    checks.remove_check("mtop", project="analysis", ctx=sender)
    bundle = exchange.export_state("analysis", "s1", tmp_path, ctx=sender).path
    with tarfile.open(bundle) as tf:
        assert "checks.json" not in tf.getnames()


def test_a_malformed_checks_member_refuses_the_import_with_nothing_written(sender: Workspace, tmp_path: Path) -> None:
    bundle = exchange.export_state("analysis", "s1", tmp_path, ctx=sender).path
    forged = tmp_path / "forged.vmlstate"
    bad = json.dumps({"checks": [{"name": "x", "command": 5}]}).encode()
    rewrite_member(bundle, forged, "checks.json", bad)
    receiver = receiver_with_base(tmp_path, sender)
    with pytest.raises(InvalidInput, match="checks.json"):
        exchange.import_state(forged, trust=True, ctx=receiver)
    assert receiver.projects.names() == []


def rewrite_member(src: Path, dst: Path, name: str, data: bytes) -> None:
    """A copy of bundle ``src`` whose member ``name`` holds ``data``, the manifest's digest and size made to match
    (so only the checks' own validation can refuse it; the bundle is then unsigned)."""
    import hashlib
    import io

    with tarfile.open(src) as tf:
        members = [(m, tf.extractfile(m).read()) for m in tf.getmembers()]
    manifest = json.loads(members[0][1])
    entry = manifest["members"][name]
    for key in ("size", "stored_size"):
        if key in entry:
            entry[key] = len(data)
    for key in ("sha256", "stored_sha256"):
        if key in entry:
            entry[key] = hashlib.sha256(data).hexdigest()
    with tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as out:
        for info, body in members:
            if info.name == "manifest.sig":
                continue
            if info.name == "manifest.json":
                body = json.dumps(manifest).encode()
            elif info.name == name:
                body = data
            info.size = len(body)
            out.addfile(info, io.BytesIO(body))
