"""Benchmark: the window shows a project with 5,000 states and a sidebar of 50 projects without freezing.

Builds, in a temporary vmlog home, 50 projects on a small raw base and 5,000 state records in one of them
(a long main line with a branch every 40 states), then runs the real window and controllers:

* the read of the big project (in a pool job, as the window does it) and its time,
* the UI thread's share of showing it (model, logbook, first paint): the target is under 300 ms,
* the sidebar with 50 projects,
* the longest the UI thread went without running its event loop meanwhile (a 10 ms timer's largest
  gap): the target is under 100 ms.

Run: ``python bench/bench_gui.py [STATES] [PROJECTS]``.
"""

from __future__ import annotations

import os
import sys
import tempfile
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
    return "bench"


class GapMeter:
    """A 10 ms timer on the UI thread; its largest gap is the longest the event loop was blocked."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.last = time.perf_counter()
        self.worst = 0.0
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.worst = max(self.worst, now - self.last)
        self.last = now


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    project_count = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        name = make_home(Path(tmp), count, project_count)
        print(f"wrote {project_count} projects and {count} states in {time.perf_counter() - t:.1f} s")

        from PySide6.QtWidgets import QApplication

        from ui.app import make_application, settle_garbage_collector
        from ui.controllers import wire
        from ui.main_window import MainWindow

        app = make_application([])
        window = MainWindow()
        wire(window, refresh_ms=0, events=False)
        settle_garbage_collector()  # as vml-gui does at start
        window.show()
        controller = window.projects_controller
        deadline = time.monotonic() + 300
        while (controller._reading or window.projects_page.projects.count() < project_count) and \
                time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.005)

        ui_time: list[float] = []
        shown = controller._show_view

        def timed_show(view) -> None:  # the UI thread's part: the model, the logbook, the heading
            began = time.perf_counter()
            shown(view)
            ui_time.append(time.perf_counter() - began)

        controller._show_view = timed_show  # type: ignore[method-assign]
        meter = GapMeter()
        t_read = time.perf_counter()
        controller.select_project(name)
        while not ui_time and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.001)
        began = time.perf_counter()
        window.repaint()  # the first paint of the tree, an event of its own in the running window
        paint = time.perf_counter() - began
        t_shown = time.perf_counter()
        for _ in range(20):
            app.processEvents()
            time.sleep(0.01)
        rows = window.projects_page.tree.model().rowCount()
        sidebar = window.projects_page.projects.count()
        print(f"projects in the sidebar:           {sidebar}")
        print(f"rows in the tree:                  {rows}")
        print(f"read + show (read in a pool job):  {1000 * (t_shown - t_read):8.1f} ms")
        print(f"UI thread, model + page:           {1000 * ui_time[0]:8.1f} ms")
        print(f"UI thread, first paint:            {1000 * paint:8.1f} ms")
        print(f"UI thread, showing the project:    {1000 * (ui_time[0] + paint):8.1f} ms   (target < 300 ms)")
        print(f"UI thread, longest block:          {1000 * meter.worst:8.1f} ms   (target < 100 ms; includes the"
              " model + page step, and waits for the GIL while the pool thread reads)")
        QApplication.processEvents()
        window.runner.wait(60_000)


if __name__ == "__main__":
    main()
