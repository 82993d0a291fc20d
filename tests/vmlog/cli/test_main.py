"""The ``vml`` entry point: exit codes and messages a script or a user relies on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from vmlog import __version__
from vmlog.errors import NotFound


def vml(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmlog.cli.main", *args], capture_output=True, text=True, check=False, timeout=120
    )


def test_version_is_eager() -> None:
    proc = vml("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"vml {__version__}"


def test_domain_error_names_the_fix_and_fails(vmlog_home: Path) -> None:
    proc = vml("project", "show", "no-such-project")
    assert proc.returncode == NotFound.exit_code
    assert "no project called 'no-such-project'" in proc.stderr
    assert "fix:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_usage_errors_exit_2_without_traceback(vmlog_home: Path) -> None:
    for args in (("no-such-command",), ("state", "list", "--no-such-option")):
        proc = vml(*args)
        assert proc.returncode == 2, args
        assert "Traceback" not in proc.stderr
        assert "Usage:" in proc.stderr
