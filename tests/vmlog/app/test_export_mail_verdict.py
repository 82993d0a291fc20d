"""The size verdict of an exported bundle counts the mail encoding: a 20 MB bundle does not fit a 25 MB limit.

`vml state export` and the GUI say whether the bundle fits a mail; a bundle of 18.3 to 25 MB fits as a
file but not as a message (base64 makes it a third larger), so the verdict must come from the message size.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from typer.testing import CliRunner

from vmlog.app import exchange, projects, states
from vmlog.cli.main import app
from vmlog.mail import DEFAULT_SIZE_LIMIT, largest_bundle, message_size
from vmlog.workspace import Workspace

MiB = 1024 * 1024


def test_a_bundle_between_the_encoded_and_the_plain_limit_is_said_not_to_fit(vmlog_home: Path, tmp_path: Path) -> None:
    ctx = Workspace.default()
    base = tmp_path / "base.img"
    with base.open("wb") as f:
        f.truncate(32 * MiB)
    projects.new_project("big", str(base), ctx=ctx)
    files = ctx.projects.get("big")
    noise = tmp_path / "noise"
    noise.write_bytes(os.urandom(19 * MiB))  # incompressible: the bundle is about 19.9 MB
    live = files.layers.path(files.load().live["system"])
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -s {noise} 0 19M", str(live)], check=True,
                   capture_output=True)
    states.save_state("big", "s1", ctx=ctx)

    exported = exchange.export_state("big", "s1", tmp_path / "s1.vmlstate", ctx=ctx)
    assert largest_bundle(DEFAULT_SIZE_LIMIT) < exported.size <= DEFAULT_SIZE_LIMIT
    assert message_size(exported.size) > DEFAULT_SIZE_LIMIT and not exported.fits_mail

    shown = CliRunner().invoke(app, ["state", "export", "s1", "-p", "big", "-o", str(tmp_path / "again.vmlstate")])
    assert shown.exit_code == 0, shown.output
    assert "too large for a 25 MB mail attachment" in shown.stderr
