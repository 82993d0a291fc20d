"""Screenshots of the state tree's Checks column and of Set up's context choice: ``python -m ui.feature_screenshots``.

Makes a throw-away vmlog home on libvirt's test driver (no VM is defined anywhere real), a project with a
branched history and two checks, shows the real window, and saves ``checks.png`` (the state tree, its Checks
column) and ``setup-context.png`` (the Set up dialog with the context templates). Running checks boots each
state in a clone, which a picture does not need: the Checks cells show marks given to the tree directly,
in the words and colours a run's results get (:func:`ui.statetree.checks.mark_of`).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

WINDOW_SIZE = (1280, 800)
PROJECT = "higgs-mass"


def _make_history(image: Path) -> None:
    """A branched history and two checks."""
    from vmlog.app import checks, logbook, projects
    from vmlog.app import states as app_states

    projects.new_project(PROJECT, str(image), memory_mib=256)
    save = app_states.save_state
    fresh = save(PROJECT, "fresh-install", message="as set up")
    save(PROJECT, "calibrated", message="ran calibration v3 on run 2024B")
    before = save(PROJECT, "before-rebase", message="tagging before rebasing on release 24.0.3")
    save(PROJECT, "rebased-24.0.3", message="rebased on 24.0.3; all unit tests pass")
    app_states.restore_state(PROJECT, before.id)
    save(PROJECT, "try-gcc13", message="experiment: build with gcc 13")
    app_states.restore_state(PROJECT, fresh.id)
    save(PROJECT, "clean-rerun", message="rerun from scratch for the cross-check")
    checks.add_check("top-mass", "python3 fit.py --quiet", checks.expectation(number=172.4, tolerance="0.5"),
                     project=PROJECT)
    checks.add_check("events", "wc -l < selected.txt", checks.expectation(expect="12873"), project=PROJECT)
    logbook.add_note("cross-check agrees with the main analysis within 0.3%", project_name=PROJECT)


def _marks(ids: dict[str, str]) -> dict:
    from ui.statetree.checks import CheckMark

    ok, bad = "\u2714", "\u2718"
    passed = CheckMark("passed", f"{ok} passed", f"Last check results:\n{ok} events: passed\n{ok} top-mass: passed")
    diverged = CheckMark("diverged", f"{bad} 1 diverged",
                         f"Last check results:\n{ok} events: passed\n{bad} top-mass: diverged (got 173.1)")
    return {ids[n]: passed for n in ("calibrated", "before-rebase", "rebased-24.0.3", "clean-rerun")} | {
        ids["try-gcc13"]: diverged}


def take(outdir: Path) -> list[Path]:
    from PySide6.QtCore import QThreadPool
    from PySide6.QtWidgets import QApplication

    from ui.app import build_window, make_application
    from ui.pages.setup_dialog import ContextSetupDialog
    from ui.statetree.checks import show_check_marks
    from ui.statetree.model import CHECKS_COLUMN

    image = Path(os.environ["VMLOG_HOME"]) / "analysis-base.raw"
    image.write_bytes(bytes(16 << 20))
    _make_history(image)
    app = make_application([])
    window = build_window()
    window.resize(*WINDOW_SIZE)
    window.show()

    def settle() -> None:
        for _ in range(5):
            QThreadPool.globalInstance().waitForDone(30_000)
            app.processEvents()

    settle()
    controller = window.projects_controller
    ids = {n.name: n.id for n in controller.view.nodes if n.name}
    show_check_marks(window.projects_page.tree.state_model, _marks(ids), CHECKS_COLUMN)
    window.projects_page.tree.select_state(ids["try-gcc13"])
    settle()
    outdir.mkdir(parents=True, exist_ok=True)
    shots = [outdir / "checks.png", outdir / "setup-context.png"]
    window.grab().save(str(shots[0]))
    dialog = ContextSetupDialog(window, "cernvm5", {PROJECT})
    names = dialog.template_names()
    if names:
        dialog.choose_template("cernvm-atlas" if "cernvm-atlas" in names else names[0])
    dialog.show()
    settle()
    dialog.grab().save(str(shots[1]))
    dialog.close()
    window.close()
    QApplication.processEvents()
    return shots


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    outdir = Path(args[0] if args else "docs/screenshots").resolve()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["VMLOG_LIBVIRT_URI"] = "test:///default"
    with tempfile.TemporaryDirectory(prefix="vmlog-screens-", ignore_cleanup_errors=True) as home:
        os.environ["VMLOG_HOME"] = home
        for path in take(outdir):
            print(path)


if __name__ == "__main__":
    main()
