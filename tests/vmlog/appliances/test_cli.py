"""``vml catalog`` and ``vml appliance`` end to end: a real process, a real local HTTP server, Ctrl-C."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vmlog.errors import NotFound

SIZE = 8 * 1024 * 1024


def _vml(home: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "VMLOG_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "vmlog.cli.main", *args], env=env, capture_output=True, text=True, timeout=120, **kw
    )


@pytest.fixture
def served(http_server, tmp_path: Path) -> tuple[Path, bytes]:
    data = bytearray(SIZE)
    data[4096:8192] = os.urandom(4096)
    data[-4096:] = os.urandom(4096)
    data = bytes(data)
    url = http_server.add("/demo.raw", data)
    catalog = {
        "vmlog_catalog": 1,
        "appliances": [
            {
                "name": "demo",
                "title": "Demo",
                "description": "demo disk",
                "versions": [
                    {
                        "version": "3",
                        "images": {
                            "raw": {"urls": [url], "size": SIZE, "digest": {"sha256": hashlib.sha256(data).hexdigest()}}
                        },
                    }
                ],
            }
        ],
    }
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(catalog))
    return path, data


def test_catalog_and_pull_commands(served, tmp_path: Path) -> None:
    catalog, data = served
    home = tmp_path / "home"
    assert _vml(home, "catalog", "add", str(catalog), "--name", "local").returncode == 0
    listed = json.loads(_vml(home, "catalog", "list", "--json").stdout)
    assert listed == [{"name": "local", "location": str(catalog.resolve())}]
    found = json.loads(_vml(home, "appliance", "search", "demo disk", "--json").stdout)
    assert [a["name"] for a in found] == ["demo"]
    pulled = _vml(home, "appliance", "pull", "demo", "--json")
    assert pulled.returncode == 0, pulled.stderr
    result = json.loads(pulled.stdout)
    assert result["image"]["sha256"] == hashlib.sha256(data).hexdigest() and result["disk_format"] == "qcow2"
    assert Path(result["disk"]).is_file()
    assert _vml(home, "appliance", "verify").returncode == 0
    assert json.loads(_vml(home, "appliance", "list", "--json").stdout)[1]["pulled"] == ["3"]
    assert _vml(home, "appliance", "rm", "demo").returncode == 0
    assert json.loads(_vml(home, "appliance", "images", "--json").stdout) == []
    assert _vml(home, "catalog", "rm", "local").returncode == 0
    missing = _vml(home, "appliance", "info", "demo")
    assert missing.returncode == NotFound.exit_code and "no appliance named 'demo'" in missing.stderr


def _like_a_terminal() -> None:
    """Ctrl-C as a terminal delivers it: a runner that starts tests in the background leaves SIGINT ignored,
    and ignored signals stay ignored across exec (Python then installs no KeyboardInterrupt handler)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_keeps_partial_then_resume(http_server, served, tmp_path: Path) -> None:
    catalog, data = served
    http_server.resources["/demo.raw"].delay_per_chunk = 0.02
    home = tmp_path / "home"
    assert _vml(home, "catalog", "add", str(catalog)).returncode == 0
    env = {**os.environ, "VMLOG_HOME": str(home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vmlog.cli.main", "appliance", "pull", "demo"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_like_a_terminal,
    )
    part = home / "cache" / "downloads" / f"sha256-{hashlib.sha256(data).hexdigest()}.part"
    deadline = time.monotonic() + 60
    while (not part.exists() or part.stat().st_size < 2 * 1024 * 1024) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "resume" in stderr
    kept = part.stat().st_size
    assert 0 < kept < SIZE and part.read_bytes() == data[:kept]
    images = home / "data" / "images"
    assert not [p for p in images.iterdir() if not p.name.startswith(".")] if images.exists() else True

    http_server.resources["/demo.raw"].delay_per_chunk = 0
    done = _vml(home, "appliance", "pull", "demo", "--json")
    assert done.returncode == 0, done.stderr
    last = http_server.log[-1]
    assert last.range == f"bytes={kept}-" and last.sent == SIZE - kept
    assert not part.exists()


def test_appliance_pull_by_vagrant_name(http_server, tmp_path: Path) -> None:
    """`vml appliance pull hashicorp/bionic64` as a Vagrant user types it, from a Vagrant metadata catalog."""
    from boxmaker import VAGRANT, convert, pack, provider, raw_disk, vagrant_metadata

    raw = raw_disk(tmp_path / "r.raw")
    box = pack(tmp_path / "b.box", [("./metadata.json", VAGRANT / "libvirt-v1" / "metadata.json"),
                                    ("./box.img", convert(raw, tmp_path / "box.img", "qcow2"))])  # fmt: skip
    url = http_server.add("/b.box", box)
    doc = vagrant_metadata("hashicorp/bionic64", {"1.0.282": [provider("libvirt", url, box)]})
    metadata = tmp_path / "bionic64.json"
    metadata.write_text(json.dumps(doc))
    home = tmp_path / "home"
    assert _vml(home, "catalog", "add", str(metadata)).returncode == 0
    pulled = _vml(home, "appliance", "pull", "hashicorp/bionic64", "--json")
    assert pulled.returncode == 0, pulled.stderr
    result = json.loads(pulled.stdout)
    assert result["appliance"] == "hashicorp/bionic64" and result["image"]["name"] == "hashicorp-bionic64"
    assert result["version"] == "1.0.282" and result["image"]["format"] == "qcow2"
