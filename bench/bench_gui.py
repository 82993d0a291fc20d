"""Benchmark: how long the window takes to show a project whose state tree has 5,000 states.

Builds a real project (``vmlog.projects.service.new_project`` on a small raw base) in a temporary
vmlog home, writes 5,000 state records into it (a long main line with a branch every 40 states),
then times, with the real controller code: reading the project through the service, laying out and
loading the tree model, and painting the window. Run: ``python bench/bench_gui.py [N]``.
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


def make_project(home: Path, count: int) -> str:
    os.environ["VMLOG_HOME"] = str(home)

    from vmlog.projects.model import State, new_id

    base = home / "base.img"
    base.write_bytes(b"\0" * (1 << 20))
    ctx = Workspace.default()
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


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        name = make_project(Path(tmp), count)
        print(f"wrote {count} states in {time.perf_counter() - t:.1f} s")

        from PySide6.QtWidgets import QApplication

        from ui.app import make_application
        from ui.controllers.projects import read_project
        from ui.main_window import MainWindow

        app = make_application([])
        window = MainWindow()
        window.show()
        app.processEvents()

        t_read = time.perf_counter()
        view = read_project(name, None)
        t_layout = time.perf_counter()
        window.projects_page.tree.set_states(view.nodes, view.current, dirty=False)
        window.projects_page.logbook.set_history(view.history)
        t_paint = time.perf_counter()
        window.repaint()
        QApplication.processEvents()
        window.grab()
        t_end = time.perf_counter()
        rows = window.projects_page.tree.model().rowCount()
        print(f"rows in the tree:            {rows}")
        print(f"read project via service:    {1000 * (t_layout - t_read):8.1f} ms")
        print(f"lay out + load tree model:   {1000 * (t_paint - t_layout):8.1f} ms")
        print(f"first paint of the window:   {1000 * (t_end - t_paint):8.1f} ms")
        print(f"total to show the project:   {1000 * (t_end - t_read):8.1f} ms")


if __name__ == "__main__":
    main()
