"""``vml demo``: set up the built-in test appliance end to end, offline, and let its guest answer.

The test appliance is built on this machine (cached), served with a catalog from an HTTP server on
127.0.0.1 exactly as a remote catalog would serve it, pulled and verified through that catalog by
:func:`vmlog.setup.setup`, booted with a seed that sets its hostname and writes a file, and asked
a few questions through its guest agent. Re-running it finds the project and asks again.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from vmlog.app import running
from vmlog.app.appliances import (
    CATALOG_FORMAT,
    TEST_APPLIANCE,
    add_catalog,
    appliance_image_facts,
    build_local_test_appliance,
    list_catalogs,
    remove_catalog,
)
from vmlog.app.setup_project import Context, ExtraFile, Workspace, ask_guest_agent
from vmlog.errors import NotFound
from vmlog.setup import SetupProgress, SetupResult, no_events, setup

DEMO_PROJECT = "demo"
DEMO_CATALOG = "vmlog-demo"
DEMO_HOSTNAME = "vmlog-demo"
DEMO_FILE = "/root/hello-from-vmlog.txt"
DEMO_GREETING = "Hello from vmlog: this file came from the project's user-data."
# What the demo asks the guest, and how it labels the answers.
QUESTIONS = (
    ("hostname", "hostname"),
    (f"cat {DEMO_FILE}", "seeded file"),
    ("uname -r", "kernel"),
    ("uptime", "uptime"),
)
NEXT_STEPS = (
    ("vml state save -m 'first look'", "save the VM's state (also while it runs)"),
    ("vml state tree", "the project's states as a tree"),
    ("vml switch OTHER", "suspend this VM and resume another project's"),
    ("vml down", "shut the VM down (--save keeps its memory)"),
)
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


def demo_context() -> Context:
    """The context the demo seeds: a hostname and one file written by user-data."""
    return Context(
        hostname=DEMO_HOSTNAME,
        extra_files=(ExtraFile(path=DEMO_FILE, content=DEMO_GREETING + "\n"),),
    )


class LocalFileServer:
    """Serves a few files over HTTP on 127.0.0.1 (with ``Range``, so interrupted pulls resume)."""

    def __init__(self, files: dict[str, Path | bytes]) -> None:
        self.files = dict(files)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the server is not running")
        return int(self._server.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def start(self) -> LocalFileServer:
        files = self.files

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet: the demo prints its own story
                pass

            def do_GET(self) -> None:
                item = files.get(self.path.split("?", 1)[0].lstrip("/"))
                if item is None:
                    self._reply(404, b"not found\n")
                    return
                data = item if isinstance(item, bytes) else None
                size = len(data) if data is not None else Path(item).stat().st_size
                start, end, status = 0, size - 1, 200
                match = _RANGE.match(self.headers.get("Range", ""))
                if match and int(match.group(1)) < size:
                    start = int(match.group(1))
                    end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
                    status = 206
                self.send_response(status)
                self.send_header("Content-Length", str(end - start + 1))
                self.send_header("Accept-Ranges", "bytes")
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                self.end_headers()
                if data is not None:
                    self.wfile.write(data[start : end + 1])
                    return
                with Path(item).open("rb") as fh:
                    fh.seek(start)
                    left = end - start + 1
                    while left > 0:
                        chunk = fh.read(min(1 << 20, left))
                        if not chunk:
                            break
                        self.wfile.write(chunk)
                        left -= len(chunk)

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="demo-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> LocalFileServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def catalog_document(image_url: str, meta: dict[str, Any]) -> dict[str, Any]:
    """A vmlog catalog offering the test appliance image at ``image_url`` (with its size and sha256)."""
    return {
        "vmlog_catalog": CATALOG_FORMAT,
        "appliances": [
            {
                "name": TEST_APPLIANCE,
                "title": "vmlog test appliance (served by `vml demo`)",
                "description": "Boots in seconds, reads a NoCloud seed, runs vmlog's guest agent.",
                "versions": [
                    {
                        "version": str(meta["version"]),
                        "min_memory_mib": int(meta["min_memory_mib"]),
                        "context": "nocloud",
                        "boot": {"agent": "vmlog", "ssh": False, "ready_marker": "VMLOG-READY"},
                        "images": {
                            "raw": {
                                "urls": [image_url],
                                "size": int(meta["size"]),
                                "digest": {"sha256": str(meta["sha256"])},
                            }
                        },
                    }
                ],
            }
        ],
    }


@contextmanager
def served_catalog(image: Path, ctx: Workspace) -> Iterator[str]:
    """Serve ``image`` and its catalog on 127.0.0.1 and record the catalog in ``ctx`` while it is served.

    The catalog is forgotten again afterwards: its server is gone, and the pulled image stays in
    the store, so nothing needs it any more.
    """
    meta = appliance_image_facts(image)
    server = LocalFileServer({})
    with server:
        server.files[image.name] = image
        document = catalog_document(server.url(image.name), meta)
        server.files["catalog.json"] = (json.dumps(document, indent=2) + "\n").encode()
        if any(entry.name == DEMO_CATALOG for entry in list_catalogs(ctx=ctx)):
            remove_catalog(DEMO_CATALOG, ctx=ctx)  # left behind by an interrupted run
        add_catalog(server.url("catalog.json"), name=DEMO_CATALOG, ctx=ctx)
        try:
            yield server.url("catalog.json")
        finally:
            try:
                remove_catalog(DEMO_CATALOG, ctx=ctx)
            except NotFound:
                pass


@dataclass
class DemoResult:
    setup: SetupResult
    catalog_url: str
    answers: list[tuple[str, str, str]] = field(default_factory=list)  # (label, command, output)
    stopped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "setup": self.setup.to_dict(),
            "catalog_url": self.catalog_url,
            "answers": [{"question": q, "command": c, "answer": a} for q, c, a in self.answers],
            "stopped": self.stopped,
            "next_steps": [{"command": c, "what": w} for c, w in NEXT_STEPS],
        }


def ask_guest(socket_path: Path) -> list[tuple[str, str, str]]:
    """Run the demo's questions in the guest through its agent."""
    outputs = ask_guest_agent(socket_path, [command for command, _label in QUESTIONS])
    return [(label, command, output) for (command, label), output in zip(QUESTIONS, outputs, strict=True)]


def run_demo(
    *,
    project: str = DEMO_PROJECT,
    build_cache: Path | None = None,
    stop: bool = False,
    ready_timeout: float = 300.0,
    say: Callable[[str], None] = lambda _text: None,
    progress: SetupProgress = no_events,
    cancel: threading.Event | None = None,
    ctx: Workspace | None = None,
) -> DemoResult:
    """Build, serve, set up and question the test appliance; ``stop`` shuts the VM down afterwards."""
    ctx = ctx or Workspace.default()
    cache = Path(build_cache) if build_cache else ctx.home.cache / "testappliance"
    say("building the test appliance (cached after the first time)")
    image = build_local_test_appliance(cache, say=say)
    with served_catalog(image, ctx) as catalog_url:
        say(f"serving it with a catalog at {catalog_url}")
        result = setup(
            TEST_APPLIANCE,
            name=project,
            context=demo_context(),
            ready_timeout=ready_timeout,
            progress=progress,
            cancel=cancel,
            ctx=ctx,
        )
    if result.agent_socket is None:
        raise NotFound(
            f"project {project!r} has no guest agent to ask",
            fix="it was not made from the test appliance; choose another name: `vml demo --name OTHER`",
        )
    demo = DemoResult(setup=result, catalog_url=catalog_url, answers=ask_guest(Path(result.agent_socket)))
    if stop:
        running.down(project, ctx=ctx)
        demo.stopped = True
    return demo
