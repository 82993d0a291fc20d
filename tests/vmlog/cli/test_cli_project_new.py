"""`vml project new` checks what it can before it pulls: an unknown backend costs no download."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from vmlog.workspace import Workspace

ROOT = Path(__file__).resolve().parents[3]


def test_unknown_backend_is_refused_before_the_appliance_is_pulled(vmlog_home: Path) -> None:
    env = {**os.environ, "VMLOG_HOME": str(vmlog_home), "PYTHONPATH": str(ROOT)}
    env.pop("VMLOG_DEBUG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "vmlog.cli.main", "project", "new", "foo", "--appliance", "vmlog-test",
         "--backend", "nosuch"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr  # a usage error, as the command line's own
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("error: ") and "nosuch" in lines[0]
    assert all(line.lstrip().startswith("fix:") for line in lines[1:]) and "Traceback" not in proc.stderr
    ws = Workspace.default()
    assert ws.images.list() == [] and ws.projects.names() == []
