"""Ctrl-C during `vml appliance pull` ends the command within 2 s, every time, and the partial file resumes."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

SIZE = 64 * 1024 * 1024
ROUNDS = 50
PROMPT_S = 2.0


def _catalog(tmp_path: Path, url: str, data: bytes) -> Path:
    image = {"urls": [url], "size": len(data), "digest": {"sha256": hashlib.sha256(data).hexdigest()}}
    entry = {"name": "demo", "title": "Demo", "description": "demo disk", "versions": [{"version": "1", "images": {"raw": image}}]}  # noqa: E501
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({"vmlog_catalog": 1, "appliances": [entry]}))
    return path


def _like_a_terminal() -> None:
    """Ctrl-C as a terminal delivers it: a runner that starts tests in the background leaves SIGINT ignored,
    and ignored signals stay ignored across exec (Python then installs no KeyboardInterrupt handler)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _pull(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "vmlog.cli", "appliance", "pull", "demo", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_like_a_terminal,
    )  # fmt: skip


def _wait_for_growth(part: Path, above: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if part.exists() and part.stat().st_size > above:
            return
        time.sleep(0.01)
    raise AssertionError(f"the download did not start: {proc.poll()} {proc.stderr.read() if proc.stderr else ''}")


def test_ctrl_c_exits_promptly_fifty_times_and_the_partial_resumes(http_server, tmp_path: Path) -> None:
    data = os.urandom(1 << 20) * (SIZE >> 20)
    url = http_server.add("/demo.raw", data, delay_per_chunk=0.03, chunk=32 * 1024)  # ~1 MB/s: never done in 50 rounds
    home = tmp_path / "home"
    env = {**os.environ, "VMLOG_HOME": str(home), "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    added = subprocess.run([sys.executable, "-m", "vmlog.cli", "catalog", "add", str(_catalog(tmp_path, url, data))],
                           env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert added.returncode == 0, added.stderr
    part = home / "cache" / "downloads" / f"sha256-{hashlib.sha256(data).hexdigest()}.part"
    rng = random.Random(16)
    slow: list[float] = []
    for round_ in range(ROUNDS):
        before = part.stat().st_size if part.exists() else 0
        proc = _pull(env)
        _wait_for_growth(part, before, proc)
        time.sleep(rng.uniform(0, 0.3))  # anywhere in the stream: reading, writing, hashing, flushing
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            _, stderr = proc.communicate(timeout=30)
        finally:
            proc.kill()
        took = time.monotonic() - sent
        assert proc.returncode == 130, (round_, stderr)
        assert "Traceback" not in stderr and "resume" in stderr, stderr
        if took > PROMPT_S:
            slow.append(took)
    assert slow == [], f"{len(slow)} of {ROUNDS} interrupts took longer than {PROMPT_S} s: {slow}"
    kept = part.stat().st_size
    assert 0 < kept < SIZE and part.read_bytes() == data[:kept]

    http_server.resources["/demo.raw"].delay_per_chunk = 0
    done = subprocess.run([sys.executable, "-m", "vmlog.cli", "appliance", "pull", "demo", "--json"],
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert http_server.log[-1].range == f"bytes={kept}-" and http_server.log[-1].sent == SIZE - kept
    assert not part.exists()


def test_ctrl_c_while_the_server_sends_nothing_exits_promptly(http_server, tmp_path: Path) -> None:
    data = os.urandom(4 << 20)
    url = http_server.add("/demo.raw", data, stall_after=1 << 20)  # then silence, far shorter than the stall timeout
    home = tmp_path / "home"
    env = {**os.environ, "VMLOG_HOME": str(home), "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    subprocess.run([sys.executable, "-m", "vmlog.cli", "catalog", "add", str(_catalog(tmp_path, url, data))],
                   env=env, capture_output=True, timeout=120, check=True)  # fmt: skip
    part = home / "cache" / "downloads" / f"sha256-{hashlib.sha256(data).hexdigest()}.part"
    proc = _pull(env)
    _wait_for_growth(part, (1 << 20) - 1, proc)
    time.sleep(0.3)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130 and time.monotonic() - sent < PROMPT_S, stderr
    assert part.read_bytes() == data[: 1 << 20]
