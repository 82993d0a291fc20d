"""Wiring the pages to vmlog's services: each controller turns button presses into service jobs."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ui.main_window import MainWindow


def wire(window: MainWindow, *, refresh_ms: int = 5000, events: bool = True) -> None:
    """Attach the controllers to ``window`` (kept as attributes so they live as long as it does).

    ``refresh_ms`` is the projects' polling period (0: none); ``events`` follows backend state events.
    """
    from ui.controllers.appliances import AppliancesController
    from ui.controllers.projects import ProjectsController
    from ui.controllers.releases import ReleasesController
    from ui.controllers.window_actions import WindowActions

    window.projects_controller = ProjectsController(  # type: ignore[attr-defined]
        window, refresh_ms=refresh_ms, events=events
    )
    window.appliances_controller = AppliancesController(window)  # type: ignore[attr-defined]
    window.releases_controller = ReleasesController(window)  # type: ignore[attr-defined]
    window.window_actions = WindowActions(window)  # type: ignore[attr-defined]
    projects, appliances = window.projects_controller, window.appliances_controller  # type: ignore[attr-defined]

    def show_project(name: str) -> None:
        window.show_page("Projects")
        projects.select_project(name)

    appliances.setup_finished.connect(show_project)
    appliances.project_created.connect(show_project)
    appliances.setup_ended.connect(projects.refresh)
