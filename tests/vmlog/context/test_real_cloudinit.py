"""Every seed vmlog writes, read back by the installed cloud-init: its datasources, user-data processor and schema.

vmlog's own reader (the test appliance) understands only a subset; what a real guest does with a
seed is what cloud-init's code does with it. The seeds are written to ISOs as vmlog attaches them,
the files are read back from the ISO (Rock Ridge names, as Linux mounts it) and handed to
``tests/vmlog/context/cloudinit_probe.py`` under the system Python that has Debian's cloud-init.
"""

from __future__ import annotations

import email
import json
import subprocess
from pathlib import Path
from typing import Any

import pycdlib
import pytest

from vmlog.context.model import Context, ExtraFile
from vmlog.context.seed import write_seed

SYSTEM_PYTHON = "/usr/bin/python3"
PROBE = Path(__file__).with_name("cloudinit_probe.py")
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJx0example physicist@laptop"


def _has_cloudinit() -> bool:
    try:
        return subprocess.run([SYSTEM_PYTHON, "-c", "import cloudinit"], capture_output=True).returncode == 0
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not _has_cloudinit(), reason="needs Debian's cloud-init (apt-get install cloud-init)")


def _extract_iso(iso_path: Path, into: Path) -> Path:
    iso = pycdlib.PyCdlib()
    iso.open(str(iso_path))
    try:
        for root, _dirs, files in iso.walk(rr_path="/"):
            for name in files:
                rel = f"{root.rstrip('/')}/{name}".lstrip("/")
                target = into / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with target.open("wb") as out:
                    iso.get_file_from_iso_fp(out, rr_path="/" + rel)
    finally:
        iso.close()
    return into


def _probe(kind: str, ctx: Context, tmp_path: Path) -> dict[str, Any]:
    iso = write_seed(kind, ctx, tmp_path / f"{kind}.iso")
    seed = _extract_iso(iso, tmp_path / f"{kind}-files")
    mode = "nocloud" if kind == "nocloud" else "configdrive"
    done = subprocess.run([SYSTEM_PYTHON, str(PROBE), mode, str(seed)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _ctx(**kw: Any) -> Context:
    base: dict[str, Any] = dict(
        user="alice",
        ssh_public_key=KEY,
        hostname="analysis-1",
        extra_files=(ExtraFile("/etc/motd", 'Welcome "home"\nline two\n', "0640"),),
    )
    base.update(kw)
    return Context(**base)


def _clean(report: dict[str, Any]) -> dict[str, Any]:
    """The merged cloud-config, after checking cloud-init loaded it without a warning or schema problem."""
    assert report["found"]
    assert report["warnings"] == []
    assert report["schema_problems"] == []
    assert report["cloud_config"] is not None
    return report["cloud_config"]


def test_nocloud_seed_as_cloudinit_reads_it(tmp_path: Path) -> None:
    report = _probe("nocloud", _ctx(), tmp_path)
    config = _clean(report)
    assert report["metadata"]["instance-id"] == "vmlog-analysis-1"
    assert report["metadata"]["local-hostname"] == "analysis-1"
    assert config["hostname"] == "analysis-1" and config["preserve_hostname"] is False
    (alice,) = [u for u in config["users"] if isinstance(u, dict)]
    assert alice["name"] == "alice" and alice["ssh_authorized_keys"] == [KEY] and alice["lock_passwd"] is True
    assert config["write_files"] == [
        {"path": "/etc/motd", "content": 'Welcome "home"\nline two\n', "permissions": "0640"}
    ]


def test_awkward_content_survives_cloudinit(tmp_path: Path) -> None:
    """A DEL or C1 character, YAML 1.1 boolean words as keys, empty mappings in lists, non-ASCII text."""
    content = "del\x7f c1\x85\x9b nul-free tab\t bell\x07 é ✓ \U0001f600 \ufeff end\n"
    extra = {
        "bootcmd": [["echo", "on"], "true"],
        "mounts": [{}],
        "on": {"yes": "no", "off": True, "null": None, "y": 1},
        "write_files": [{"path": "/etc/awkward", "content": content}],
    }
    report = _probe("nocloud", _ctx(extra_user_data=extra), tmp_path)
    assert report["found"] and report["warnings"] == []
    merged = report["cloud_config"]
    assert merged["write_files"][1] == {"path": "/etc/awkward", "content": content}
    assert merged["on"] == {"yes": "no", "off": True, "null": None, "y": 1}
    assert merged["mounts"] == [{}]
    assert merged["bootcmd"] == [["echo", "on"], "true"]


def test_nocloud_has_no_16k_cap(tmp_path: Path) -> None:
    big = "z" * 40000 + "\n"
    config = _clean(_probe("nocloud", _ctx(extra_files=(ExtraFile("/data/blob", big),)), tmp_path))
    assert config["write_files"][0]["content"] == big


def test_nocloud_keeps_cvmfs_settings(tmp_path: Path) -> None:
    ctx = _ctx(cvmfs_repositories=("atlas.cern.ch", "sft.cern.ch"), cvmfs_http_proxy="http://squid.example.org:3128")
    config = _clean(_probe("nocloud", ctx, tmp_path))
    (local,) = [f for f in config["write_files"] if f["path"] == "/etc/cvmfs/default.local"]
    assert "CVMFS_REPOSITORIES=atlas.cern.ch,sft.cern.ch\n" in local["content"]
    assert "CVMFS_HTTP_PROXY='http://squid.example.org:3128'\n" in local["content"]


def test_nocloud_script_part_is_kept(tmp_path: Path) -> None:
    report = _probe("nocloud", _ctx(extra_user_data="#!/bin/sh\necho ok > /tmp/ok\n"), tmp_path)
    _clean(report)
    types = [p["type"] for p in report["parts"]]
    assert types == ["text/cloud-config", "text/x-shellscript"]
    assert report["parts"][1]["payload"] == "#!/bin/sh\necho ok > /tmp/ok\n"


def test_cernvm_config_drive_as_cloudinit_reads_it(tmp_path: Path) -> None:
    ctx = _ctx(cvmfs_repositories=("atlas.cern.ch",), cvmfs_http_proxy="DIRECT", extra_user_data="#!/bin/sh\ntrue\n")
    report = _probe("cernvm", ctx, tmp_path)
    config = _clean(report)
    assert report["metadata"]["instance-id"] == "vmlog-analysis-1"
    assert report["metadata"]["hostname"] == "analysis-1"
    assert report["ec2_metadata"]["local-hostname"] == "analysis-1"
    types = [p["type"] for p in report["parts"]]
    assert types == ["text/ucernvm", "text/amiconfig-user-data", "text/cloud-config", "text/x-shellscript"]
    ucernvm, amiconfig = report["parts"][0]["payload"], report["parts"][1]["payload"]
    assert ucernvm.startswith("[ucernvm-begin]\n") and "cvmfs_http_proxy=DIRECT\n" in ucernvm
    assert "[cernvm]\nrepositories=atlas.cern.ch\nproxy=DIRECT\n" in amiconfig
    assert config["hostname"] == "analysis-1"
    # the user-data cloud-init hands on is the same MIME document vmlog wrote
    assert email.message_from_string(report["userdata_raw"]).is_multipart()
