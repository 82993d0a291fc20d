"""A hundred ``kill -9`` at random moments of ``vml state export``, ``vml state import`` and ``vml appliance pull``.

After each kill: no process vmlog started outlives it (qemu-img, qemu-nbd, zstd...: found by their process group,
their environment or their command line), and after ``vml doctor --repair`` (the checks it runs, in this process)
no work directory, hidden output, partial download, staging entry, socket directory or half-imported project is
left. No saved state is lost, and each operation still succeeds afterwards.

Each kill is cheap: small data (4 MiB of state, a 16 MiB image served at 32 MiB/s), commands forked from one
interpreter that imported vmlog once, and the kill comes a random time after the command's work is seen to begin
(its work files appear), within the time the operation takes (measured once per kind before the kills). Attempts
go on until ``KILLS`` (100; ``VMLOG_KILLS`` to change) kills landed while the command ran, spread evenly over the
three; a kill that came after the command ended is checked all the same and not counted.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from vmlog.app import doctor, exchange, projects
from vmlog.app import states as app_states
from vmlog.workspace import Workspace

MIB = 1 << 20
KILLS = int(os.environ.get("VMLOG_KILLS", "100"))  # spread evenly over export, import and pull
ROOT = Path(__file__).resolve().parents[3]
SERVE_RATE = 32 * MIB  # bytes per second: the pull's 16 MiB download lasts half a second


# -- starting vml cheaply --------------------------------------------------------------------------------
# A fork server: one interpreter imports vmlog and every ``vml`` command module once, then forks a child per
# command that runs ``vmlog.cli.main.run()`` as its own session leader. Importing vmlog costs seconds on a loaded
# machine; a fork costs milliseconds, and the child runs the same code as ``vml`` would.
ZYGOTE = r"""
import importlib, json, os, sys
from vmlog.cli import main
for lazy in main.COMMANDS:
    importlib.import_module(lazy.target.split(":")[0])
main.build_app()
for line in sys.stdin:
    request = json.loads(line)
    if "wait" in request:
        _pid, status = os.waitpid(request["wait"], 0)
        print(os.waitstatus_to_exitcode(status), flush=True)
        continue
    pid = os.fork()
    if pid == 0:
        os.setsid()
        os.environ.update(request["env"])
        sys.argv = ["vml", *request["args"]]
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        try:
            main.run()
        except SystemExit as exc:
            os._exit(exc.code if isinstance(exc.code, int) else 1)
        os._exit(0)
    print(pid, flush=True)
"""


class VmlForks:
    """Starts ``vml`` commands as children of the fork server; waits for them and reaps them there."""

    def __init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "VMLOG_HOME"} | {"PYTHONPATH": str(ROOT)}
        self.server = subprocess.Popen([sys.executable, "-c", ZYGOTE], env=env, stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True)

    def _ask(self, request: dict) -> int:
        assert self.server.stdin is not None and self.server.stdout is not None
        self.server.stdin.write(json.dumps(request) + "\n")
        self.server.stdin.flush()
        return int(self.server.stdout.readline())

    def start(self, home: Path, args: list[str]) -> int:
        return self._ask({"env": {"VMLOG_HOME": str(home)}, "args": args})

    def wait(self, pid: int) -> int:
        return self._ask({"wait": pid})

    def close(self) -> None:
        assert self.server.stdin is not None
        self.server.stdin.close()
        self.server.wait(timeout=30)


def spawn(home: Path, *args: str) -> subprocess.Popen[bytes]:
    """``vml ARGS`` in a new interpreter, as a user starts it."""
    env = {**os.environ, "VMLOG_HOME": str(home), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "vmlog.cli.main", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def running(pid: int) -> bool:
    """Whether child ``pid`` of the fork server still runs (an ended one is a zombie until it is reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# -- probes ----------------------------------------------------------------------------------------------
def helpers_of(home: Path, pid: int) -> list[str]:
    """Live processes that belong to the killed ``pid``: in its process group, with its home in their environment
    or command line, or naming its qemu-nbd socket directory."""
    found = []
    marker = f"VMLOG_HOME={home}".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        state, pgid = fields[0], int(fields[2])
        if state == "Z":
            continue
        if pgid == pid or marker in environ or str(home) in cmdline or f"vmlog-nbd-{pid}-" in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


def leftovers(home: Path, out: Path, pid: int) -> list[str]:
    """Every temporary thing a killed command of ``home`` may leave (``out``: the export's output directory)."""
    tmp = Path(tempfile.gettempdir())
    found = [str(p) for p in (home / "cache").glob("vmlstate-*")]
    found += [str(p) for p in out.glob(".*.tmp-*")]
    found += [str(p) for p in tmp.glob(f"vmlog-nbd-{pid}-*")]
    found += [str(p) for p in (home / "data" / "projects").glob("*/*.import-*")]
    found += [str(p) for p in (home / "data" / "images" / ".staging").glob("*")]
    found += [str(p) for p in (home / "cache").rglob("*.part")] + [str(p) for p in home.rglob("*.tmp-*")]
    ctx = Workspace.default()
    found += [f"project {n} without states" for n in ctx.projects.names() if not ctx.projects.get(n).states()]
    return found


def repair(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``vml doctor --repair`` does to leftovers and the project store."""
    monkeypatch.setenv("VMLOG_HOME", str(home))
    doctor.check_leftovers(repair=True)
    doctor.check_project_store(repair=True)


# -- the three operations ------------------------------------------------------------------------------
@dataclass
class Operation:
    """One kind of command to kill: how to start it, when its work has begun, how to undo its success."""

    name: str
    home: Path
    out: Path
    args: Callable[[int], list[str]]  # the command line of attempt N
    begun: Callable[[], bool]  # its work files exist
    reset: Callable[[], None]  # undo a run that finished before the kill
    duration: float = 0.0  # seconds from begun() to its end, measured on a run left to finish

    def start(self, forks: VmlForks, attempt: int) -> tuple[int, float]:
        """Start attempt ``attempt``; returns its process id once its work has begun, and when that was."""
        pid = forks.start(self.home, self.args(attempt))
        deadline = time.monotonic() + 60
        while not self.begun() and running(pid):
            assert time.monotonic() < deadline, f"{self.name} never began"
            time.sleep(0.005)
        return pid, time.monotonic()

    def measure(self, forks: VmlForks) -> None:
        pid, began = self.start(forks, 10_000)
        while running(pid):
            time.sleep(0.005)
        self.duration = max(time.monotonic() - began, 0.05)
        assert forks.wait(pid) == 0, f"{self.name} fails when left alone"
        self.reset()


def _glob_any(*patterns: tuple[Path, str]) -> Callable[[], bool]:
    return lambda: any(next(d.glob(p), None) is not None for d, p in patterns if d.is_dir())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path | str]]:
    """A sender home with state s1 (4 MiB of random data over the base), its bundle, a receiver home holding the
    base, and a throttled HTTP server offering a 16 MiB qcow2 through a catalog registered in a third home."""
    root = tmp_path_factory.mktemp("kill")
    saved = {name: os.environ.get(name) for name in ("VMLOG_HOME", "VMLOG_LIBVIRT_URI")}
    os.environ["VMLOG_HOME"] = str(root / "sender")
    # a module fixture runs before the per-test libvirt_test_driver of tests/conftest.py: use the test driver
    # here too, holding a connection so that the domain outlives each backend object (no daemon needed)
    os.environ["VMLOG_LIBVIRT_URI"] = "test:///default"
    holder = pytest.importorskip("libvirt").open("test:///default")
    try:
        ctx = Workspace.default()
        base = root / "base.raw"
        base.write_bytes(b"\x11" * (16 * MIB))
        image = ctx.images.add_file(base, name="testbase", version="1", format="raw")
        projects.new_project("analysis", image.sha256, ctx=ctx)
        _write_noise(ctx.projects.get("analysis"), root / "noise", 4)
        app_states.save_state("analysis", "s1", ctx=ctx)
        bundle = exchange.export_state("analysis", "s1", root, ctx=ctx).path
        os.environ["VMLOG_HOME"] = str(root / "receiver")
        Workspace.default().images.add_file(image.path, name="testbase", version="1", format="raw")
    finally:
        holder.close()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    served = root / "served"
    served.mkdir()
    disk = served / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "32M"], check=True)
    (root / "noise").write_bytes(os.urandom(16 * MIB))
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -s {root / 'noise'} 0 16M", str(disk)], check=True,
                   capture_output=True)
    with _Server(served) as url:
        _register_catalog(root / "puller", url, disk)
        yield {"root": root, "sender": root / "sender", "receiver": root / "receiver", "puller": root / "puller",
               "bundle": bundle}


def _write_noise(files, noise: Path, mib: int) -> None:
    noise.write_bytes(os.urandom(mib * MIB))
    live = files.layers.path(files.load().live["system"])
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -s {noise} 0 {mib}M", str(live)], check=True,
                   capture_output=True)


class _SlowHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files at ``SERVE_RATE``, so a kill lands mid-download without a big file."""

    def copyfile(self, source, outputfile) -> None:  # noqa: ANN001 - the base class's signature
        chunk = 256 << 10
        with contextlib.suppress(ConnectionError):  # the killed pull hangs up
            while data := source.read(chunk):
                outputfile.write(data)
                time.sleep(len(data) / SERVE_RATE)

    def log_message(self, *args) -> None:  # noqa: ANN002
        pass


class _Server:
    """A throttled HTTP server of ``root`` on 127.0.0.1 while the ``with`` block runs; its URL."""

    def __init__(self, root: Path) -> None:
        handler = functools.partial(_SlowHandler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _register_catalog(home: Path, url: str, disk: Path) -> None:
    digest = hashlib.sha256(disk.read_bytes()).hexdigest()
    image = {"url": f"{url}/{disk.name}", "digest": {"sha256": digest}, "size": disk.stat().st_size}
    catalog = {"vmlog_catalog": 1, "appliances": [{"name": "served", "versions": [
        {"version": "1.0", "images": {"qcow2": image}}]}]}
    (home / "config").mkdir(parents=True)
    (home / "catalog.json").write_text(json.dumps(catalog))
    registered = {"catalogs": [{"name": "local", "location": str(home / "catalog.json")}]}
    (home / "config" / "catalogs.json").write_text(json.dumps(registered))


def _operations(world: dict, monkeypatch: pytest.MonkeyPatch) -> list[Operation]:
    sender, receiver, puller = world["sender"], world["receiver"], world["puller"]
    out = world["root"] / "out"
    out.mkdir(exist_ok=True)

    def reset_export() -> None:
        for done in out.glob("*.vmlstate"):
            done.unlink()

    def reset_pull() -> None:
        monkeypatch.setenv("VMLOG_HOME", str(puller))
        images = Workspace.default().images
        for image in images.list():
            images.remove(image.sha256)

    return [
        Operation("export", sender, out, lambda i: ["state", "export", "s1", "-p", "analysis", "-o", str(out)],
                  _glob_any((sender / "cache", "vmlstate-export-*"), (out, ".*.tmp-*")), reset_export),
        Operation("import", receiver, world["root"], lambda i: ["state", "import", str(world["bundle"]), "--trust",
                                                                "-p", f"imp{i}"],
                  _glob_any((receiver / "cache", "vmlstate-import-*")), lambda: None),
        Operation("pull", puller, world["root"], lambda i: ["appliance", "pull", "served"],
                  _glob_any((puller / "cache", "**/*.part"), (puller / "data" / "images" / ".staging", "*")),
                  reset_pull),
    ]


def _kill_repeatedly(forks: VmlForks, operations: list[Operation], rng: random.Random,
                     monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """``KILLS`` kills that land while the command runs, spread evenly over the operations (a kill that comes after
    its command ended is checked too, and not counted); how many of each, and how many while a helper ran."""
    for op in operations:
        op.measure(forks)
    landed = {op.name: 0 for op in operations}
    helpers_killed = 0
    for attempt in range(3 * KILLS):
        if sum(landed.values()) >= KILLS:
            break
        op = min(operations, key=lambda o: landed[o.name])
        pid, began = op.start(forks, attempt)
        time.sleep(max(0.0, began + rng.uniform(0, op.duration) - time.monotonic()))
        ran = running(pid)
        helpers_killed += ran and len(helpers_of(op.home, pid)) > 1  # besides the vml process itself
        os.kill(pid, signal.SIGKILL)  # the vml process alone, as `kill -9 PID`: its helpers must die by themselves
        code = forks.wait(pid)
        landed[op.name] += ran
        deadline = time.monotonic() + 15  # a helper killed inside an fsync ends when the write does
        while helpers_of(op.home, pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert helpers_of(op.home, pid) == [], f"a helper outlived kill {attempt} of {op.name}"
        repair(op.home, monkeypatch)
        assert leftovers(op.home, op.out, pid) == [], f"kill {attempt} of {op.name} left these"
        if not ran:
            assert code == 0, f"{op.name} failed on its own (exit {code})"
            op.reset()
    return landed | {"with a helper running": helpers_killed}


def test_100_kill_9_during_export_import_and_pull_leave_no_helper_and_nothing_after_repair(
        world: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(17)
    operations = _operations(world, monkeypatch)
    forks = VmlForks()
    try:
        landed = _kill_repeatedly(forks, operations, rng, monkeypatch)
    finally:
        forks.close()
    print(f"kills that landed while the command ran: {landed}")
    assert sum(landed[op.name] for op in operations) == KILLS, landed
    assert landed["with a helper running"] >= KILLS // 10, landed  # the helper check saw real helpers die
    monkeypatch.setenv("VMLOG_HOME", str(world["sender"]))
    ctx = Workspace.default()
    assert [s.name for s in ctx.projects.get("analysis").states().values()] == ["s1"]  # no saved state lost
    for op in operations:  # each still works from where the kills left it, started as `vml` is
        assert spawn(op.home, *op.args(20_000)).wait(timeout=300) == 0, op.name
    shutil.rmtree(world["root"] / "out", ignore_errors=True)
