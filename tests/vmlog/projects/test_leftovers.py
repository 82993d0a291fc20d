"""What a killed vmlog leaves is found by `vml doctor` and removed by `vml doctor --repair`; live work is kept."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vmlog import paths
from vmlog.app import doctor
from vmlog.projects.leftovers import export_recorded, find_leftovers


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_leftovers_of_dead_processes_are_found_and_removed(vmlog_home: Path, tmp_path: Path) -> None:
    home = paths.home().ensure()
    gone = dead_pid()
    half_import = home.cache / f"vmlstate-import-{gone}-abcd"
    (half_import / "layers").mkdir(parents=True)
    (half_import / "import.json").write_text(json.dumps({"project": "bigp", "state_id": "ab" * 8}))
    export_work = home.cache / "vmlstate-export-x1y2"
    export_work.mkdir()
    (export_work / "disk.zst").write_bytes(b"x" * 1000)
    out = tmp_path / "out"
    out.mkdir()
    hidden = out / ".x.vmlstate.tmp-1234abcd"
    hidden.write_bytes(b"partial bundle")
    (home.cache / "exports").mkdir()
    record = {"pid": gone, "target": str(out / "x.vmlstate")}
    (home.cache / "exports" / f"{gone}-aa.json").write_text(json.dumps(record))
    home.downloads.mkdir(parents=True, exist_ok=True)
    (home.downloads / "sha256-ab.part").write_bytes(b"y" * 100)
    staging = home.images / ".staging" / "add-old"
    staging.mkdir(parents=True)
    os.utime(staging, (time.time() - 7200, time.time() - 7200))

    found = find_leftovers(home)
    assert len(found) == 5, [f.what for f in found]
    assert [f.project for f in found if f.project] == ["bigp"]
    check = doctor.check_leftovers(repair=False)
    assert not check.ok and "vml doctor --repair" in (check.fix or "")
    check = doctor.check_leftovers(repair=True)
    assert check.ok and len(check.warnings) == 5
    assert not half_import.exists() and not export_work.exists() and not hidden.exists()
    assert not list(home.downloads.glob("*.part")) and not staging.exists()
    assert not list((home.cache / "exports").iterdir())
    assert doctor.check_leftovers().summary == "nothing left behind by interrupted commands"
    (home.downloads / "sha256-ef.part").write_bytes(b"p")
    assert doctor.check_leftovers().ok  # a partial download alone is kept for resuming


def test_work_of_live_processes_is_left_alone(vmlog_home: Path, tmp_path: Path) -> None:
    home = paths.home().ensure()
    live = home.cache / f"vmlstate-import-{os.getpid()}-abcd"
    live.mkdir()
    fresh = home.images / ".staging" / "add-new"
    fresh.mkdir(parents=True)
    home.downloads.mkdir(parents=True, exist_ok=True)
    (home.downloads / "sha256-cd.part").write_bytes(b"z")
    lock = os.open(home.downloads / "sha256-cd.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(lock, fcntl.LOCK_EX)
    busy = home.cache / "vmlstate-export-busy"
    busy.mkdir()
    try:
        with export_recorded(home.cache, tmp_path / "y.vmlstate"):
            (tmp_path / ".y.vmlstate.tmp-00").write_bytes(b"being written")
            assert find_leftovers(home) == []
        assert not list((home.cache / "exports").iterdir())
    finally:
        os.close(lock)
    assert [f.what for f in find_leftovers(home)] == [
        "work directory vmlstate-export-busy", "partial download sha256-cd.part (1 bytes, resumed by the next pull)"
    ]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_a_qemu_nbd_whose_vmlog_was_killed_is_ended(vmlog_home: Path, tmp_path: Path) -> None:
    home = paths.home().ensure()
    layer = home.data / "layer.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(layer), "1M"], check=True)
    script = (
        "import sys; from pathlib import Path; from vmlog.bundles.nbd import NbdImage;"
        f"img = NbdImage(Path({str(layer)!r}), 'qcow2'); print(img.size, flush=True); sys.stdin.read()"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])})
    assert parent.stdout is not None and parent.stdout.readline().strip() == b"1048576"
    children = subprocess.run(["pgrep", "-P", str(parent.pid), "qemu-nbd"], capture_output=True, text=True).stdout
    assert children.split(), "qemu-nbd was not started"
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in children.split()):
        time.sleep(0.1)
    assert not any(Path(f"/proc/{pid}").exists() for pid in children.split()), "qemu-nbd outlived vmlog"
    leftovers = [f.what for f in find_leftovers(home)]
    assert any("qemu-nbd socket directory" in what for what in leftovers)
    doctor.check_leftovers(repair=True)
    assert not [f for f in find_leftovers(home) if "qemu-nbd" in f.what]
