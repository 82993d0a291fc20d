"""Screenshots of every page from real data: ``python -m ui.screenshots OUTDIR``.

Makes a throw-away vmlog home, creates a project on the vmlog test appliance through the project
service, saves, restores and branches states and writes notes the way a user would, then shows the
real window on each page and saves ``projects.png``, ``appliances.png`` and ``releases.png``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

WINDOW_SIZE = (1280, 800)


def _make_history(image: Path) -> None:
    from vmlog.projects import service

    service.new_project("calibration", str(image), memory_mib=256)
    service.new_project("higgs-mass", str(image), memory_mib=256)
    save = service.save_state
    fresh = save("higgs-mass", "fresh-install", message="vmlog test appliance as set up")
    save("higgs-mass", "calibrated", message="ran calibration v3 on run 2024B")
    before = save("higgs-mass", "before-rebase", message="tagging before rebasing on release 24.0.3")
    save("higgs-mass", "rebased-24.0.3", message="rebased on 24.0.3; all unit tests pass")
    service.restore_state("higgs-mass", before.id)
    save("higgs-mass", "try-gcc13", message="experiment: build with gcc 13")
    service.restore_state("higgs-mass", fresh.id)
    save("higgs-mass", "clean-rerun", message="rerun from scratch for the cross-check")
    service.add_note("cross-check agrees with the main analysis within 0.3%", project_name="higgs-mass")
    service.add_note("calibration constants copied to the group area", project_name="higgs-mass", ref="calibrated")
    save("calibration", "baseline", message="first pass")


def take(outdir: Path) -> list[Path]:
    from PySide6.QtCore import QThreadPool
    from PySide6.QtWidgets import QApplication

    from ui.app import build_window, make_application
    from vmlog.testappliance.build import build_test_appliance

    cache = Path(os.environ.get("VMLOG_TEST_CACHE", "~/.cache/vmlog-tests")).expanduser()
    _make_history(build_test_appliance(cache))
    app = make_application([])
    window = build_window()
    window.resize(*WINDOW_SIZE)
    window.show()

    def settle() -> None:
        for _ in range(5):
            QThreadPool.globalInstance().waitForDone(30_000)
            QApplication.processEvents()

    settle()
    page = window.projects_page
    names = [page.projects.item(i).text() for i in range(page.projects.count())]
    page.projects.setCurrentRow(names.index("higgs-mass"))
    settle()
    outdir.mkdir(parents=True, exist_ok=True)
    shots = []
    for name in ("Projects", "Appliances", "Releases"):
        window.show_page(name)
        settle()
        path = outdir / f"{name.lower()}.png"
        window.grab().save(str(path))
        shots.append(path)
    window.close()
    app.processEvents()
    return shots


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    outdir = Path(args[0] if args else "docs/screenshots").resolve()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    with tempfile.TemporaryDirectory(prefix="vmlog-screens-", ignore_cleanup_errors=True) as home:
        os.environ["VMLOG_HOME"] = home
        for path in take(outdir):
            print(path)


if __name__ == "__main__":
    main()
