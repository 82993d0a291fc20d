"""Benchmark: the window shows a project with 5,000 states and a sidebar of 50 projects without freezing.

Builds, in a temporary vmlog home, 50 projects on a small raw base and 5,000 state records in one of them
(a long main line with a branch every 40 states), each with the logbook row its save would have left, then
runs the real window and controllers as ``vml-gui`` does (start-up objects frozen, the cycle collector run
from the event loop, :class:`ui.app.IdleCollector`):

* the read of the big project (in a pool job, as the window does it) and its time,
* the UI thread's share of showing it (model, logbook, first paint): the target is under 300 ms,
* the sidebar with 50 projects,
* two periodic reads of everything with the big project on show, as the window's timer makes them,
* the longest the UI thread went without running its event loop in each phase (a 10 ms timer's largest
  gap; start-up, sidebar, showing the project, periodic reads): the target is under 100 ms,
* the longest garbage collection that ran on the UI thread.

Run: ``python bench/bench_gui.py [STATES] [PROJECTS] [--auto-gc]``; ``--auto-gc`` leaves the collector
to the interpreter's thresholds, to compare.
"""

from __future__ import annotations

import gc
import os
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

from vmlog.app import projects
from vmlog.workspace import Workspace

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("VMLOG_LIBVIRT_URI", "test:///default")


def make_home(home: Path, count: int, project_count: int) -> str:
    os.environ["VMLOG_HOME"] = str(home)
    from vmlog.projects.model import State, new_id

    base = home / "base.img"
    base.write_bytes(b"\0" * (1 << 20))
    ctx = Workspace.default()
    for number in range(project_count - 1):
        projects.new_project(f"analysis-{number:02d}", str(base), ctx=ctx)
    projects.new_project("bench", str(base), ctx=ctx)
    files = ctx.projects.get("bench")
    project = files.load()
    parent: str | None = None
    main_line: list[str] = []
    t0 = time.time() - count * 60
    for i in range(count):
        branch_from = main_line[-5] if i % 40 == 39 and len(main_line) > 5 else parent
        state = State(
            id=new_id(), parent=branch_from, name=f"state-{i}" if i % 10 == 0 else None,
            message=f"analysis step {i}", author="bench@host", created=t0 + i * 60,
            layers={}, spec=project.spec,
        )
        files.write_state(state)
        if branch_from is parent:
            parent = state.id
            main_line.append(state.id)
    project.current = parent
    files.write(project)
    write_save_rows(ctx, "bench")
    return "bench"


def write_save_rows(ctx: Workspace, name: str) -> None:
    """The logbook rows 5,000 ``vml state save`` would have written (in one transaction: this is set-up)."""
    states = sorted(ctx.projects.get(name).states().values(), key=lambda s: s.created)
    rows = [("bench@host", "host", 1, s.created, s.created + 1.5, name, s.id, "state save", "{}", "ok", 1.5)
            for s in states]
    db = sqlite3.connect(ctx.logbook.path)
    with db:
        db.executemany(
            "INSERT INTO operations (who, host, pid, started, finished, project, state_id, action, args, outcome,"
            " duration) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.close()


class GapMeter:
    """A 10 ms timer on the UI thread; its largest gap is the longest the event loop was blocked."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.last = time.perf_counter()
        self.worst = 0.0
        self.phase_worst: dict[str, float] = {}
        self.phase = "start-up"
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.worst = max(self.worst, now - self.last)
        self.phase_worst[self.phase] = max(self.phase_worst.get(self.phase, 0.0), now - self.last)
        self.last = now

    def enter(self, phase: str) -> None:
        self._tick()
        self.phase = phase


class CollectorPauses:
    """The longest garbage collection once the window was up: on the UI thread, and on any thread (a pool
    thread's collection holds the GIL too, so the UI thread waits for it all the same)."""

    def __init__(self) -> None:
        self.began: dict[int, float] = {}
        self.worst = 0.0
        self.worst_anywhere = 0.0
        self.count = 0
        gc.callbacks.append(self._event)

    def _event(self, phase: str, _info: dict) -> None:
        thread = threading.get_ident()
        if phase == "start":
            self.began[thread] = time.perf_counter()
            return
        took = time.perf_counter() - self.began.pop(thread, time.perf_counter())
        self.count += 1
        self.worst_anywhere = max(self.worst_anywhere, took)
        if thread == threading.main_thread().ident:
            self.worst = max(self.worst, took)


def run_until(done, timeout_ms: int = 300_000) -> None:
    """Run Qt's event loop (as the window's would run) until ``done()`` holds, checked every 5 ms."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    check = QTimer()
    check.setInterval(5)
    check.timeout.connect(lambda: done() and loop.quit())
    check.start()
    QTimer.singleShot(timeout_ms, loop.quit)
    if not done():
        loop.exec()
    check.stop()


def run_for(ms: int) -> None:
    began = time.perf_counter()
    run_until(lambda: time.perf_counter() - began >= ms / 1000)


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    auto_gc = "--auto-gc" in sys.argv
    count = int(args[0]) if args else 5000
    project_count = int(args[1]) if len(args) > 1 else 50
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        name = make_home(Path(tmp), count, project_count)
        print(f"wrote {project_count} projects and {count} states in {time.perf_counter() - t:.1f} s")


        from ui.app import IdleCollector, make_application, settle_garbage_collector
        from ui.controllers import wire
        from ui.main_window import MainWindow

        app = make_application([])
        window = MainWindow()
        meter = GapMeter()
        wire(window, refresh_ms=0, events=False)
        settle_garbage_collector()  # as vml-gui does at start
        pauses = CollectorPauses()
        collector = None if auto_gc else IdleCollector(window)
        window.show()
        meter.enter("sidebar")
        controller = window.projects_controller
        run_until(lambda: not controller._reading and window.projects_page.projects.count() >= project_count)

        ui_time: list[float] = []
        shown = controller._show_view

        def timed_show(view) -> None:  # the UI thread's part: the model, the logbook, the heading
            began = time.perf_counter()
            shown(view)
            ui_time.append(time.perf_counter() - began)

        controller._show_view = timed_show  # type: ignore[method-assign]
        meter.enter("showing the project")
        t_read = time.perf_counter()
        controller.select_project(name)
        run_until(lambda: bool(ui_time))
        began = time.perf_counter()
        window.repaint()  # the first paint of the tree, an event of its own in the running window
        paint = time.perf_counter() - began
        t_shown = time.perf_counter()
        run_for(200)
        meter.enter("periodic reads")
        for _ in range(2):  # what the window's refresh timer does every few seconds
            controller.refresh()
            run_until(lambda: not controller._reading)
        meter.enter("done")
        rows = window.projects_page.tree.model().rowCount()
        sidebar = window.projects_page.projects.count()
        logbook = window.projects_page.logbook.proxy.rowCount()
        print(f"collector:                         {'the interpreter' if auto_gc else 'IdleCollector'}")
        print(f"projects in the sidebar:           {sidebar}")
        print(f"rows in the tree:                  {rows}")
        print(f"rows in the logbook:               {logbook}")
        print(f"read + show (read in a pool job):  {1000 * (t_shown - t_read):8.1f} ms")
        print(f"UI thread, model + page:           {1000 * ui_time[0]:8.1f} ms")
        print(f"UI thread, first paint:            {1000 * paint:8.1f} ms")
        print(f"UI thread, showing the project:    {1000 * (ui_time[0] + paint):8.1f} ms   (target < 300 ms)")
        again = max(ui_time[1:], default=0.0)
        print(f"UI thread, a periodic read:        {1000 * again:8.1f} ms   (the same tree again)")
        for phase, worst in meter.phase_worst.items():
            if phase != "done":
                print(f"longest block, {phase + ':':21}{1000 * worst:8.1f} ms")
        worst = max(w for p, w in meter.phase_worst.items() if p not in ("start-up", "done"))
        print(f"UI thread, longest block:          {1000 * worst:8.1f} ms   (target < 100 ms, once the window is up;"
              " includes the model + page step and waits for the GIL while the pool thread reads)")
        print(f"longest collection, UI thread:     {1000 * pauses.worst:8.1f} ms   (any thread:"
              f" {1000 * pauses.worst_anywhere:.1f} ms; {pauses.count} collections)")
        if collector is not None:
            collector.stop()
        app.processEvents()
        window.runner.wait(60_000)


if __name__ == "__main__":
    main()
