"""``vml console`` attaches a real terminal to the running guest's serial console."""

from __future__ import annotations

import os
import pty
import select
import signal
import sys
import time
from pathlib import Path

import pytest

from vmlog.app import projects, running
from vmlog.testappliance.agent import GuestChannel
from vmlog.workspace import Workspace

pytestmark = pytest.mark.vm


def _read_until(fd: int, wanted: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    return seen


def test_console_attaches_to_the_guest_shell(vmlog_home: Path, test_appliance_image: Path) -> None:
    ctx = Workspace.default()
    try:
        projects.new_project("console", str(test_appliance_image), memory_mib=256, ctx=ctx)
        running.up("console", ctx=ctx)
        spec = ctx.projects.get("console").load().spec
        with GuestChannel(Path(spec["channel_socket"])) as guest:
            guest.wait_ready(240)
        assert "VMLOG-READY" in running.console_tail("console", ctx=ctx, lines=400)

        pid, fd = pty.fork()
        if pid == 0:  # the child is the user's terminal session running `vml console`
            os.execv(sys.executable, [sys.executable, "-m", "vmlog.cli.main", "console", "console"])
        try:
            banner = _read_until(fd, b"Escape character", 60)
            assert b"Escape character" in banner, banner[-2000:]
            # the appliance's console asks for Enter before it starts a shell; an Enter typed while virsh is
            # still connecting its stream is lost, so press it again as a user would until the prompt shows
            prompt = b""
            deadline = time.monotonic() + 60
            while b"# " not in prompt and time.monotonic() < deadline:
                os.write(fd, b"\r")
                prompt += _read_until(fd, b"# ", 5)
            assert b"# " in prompt, prompt[-2000:]
            os.write(fd, b"echo console-$((40 + 2))\r")
            answer = _read_until(fd, b"console-42\r\n", 60)
            assert b"console-42\r\n" in answer, answer[-2000:]
        finally:
            os.kill(pid, signal.SIGKILL)  # virsh console ignores SIGTERM while it holds the terminal
            os.waitpid(pid, 0)
            os.close(fd)
    finally:
        projects.remove_project("console", ctx=ctx)
