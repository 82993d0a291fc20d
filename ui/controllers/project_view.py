"""What the Projects page shows, read from the use cases in one job: the sidebar's rows and one project's view."""

from __future__ import annotations

from dataclasses import dataclass, field

from ui.logbook_panel import LogbookRow, lines_key, logbook_rows
from ui.project_list import ProjectSummary
from ui.statetree.checks import CheckMark, read_check_marks
from ui.statetree.layout import StateNode, TreeRow, lay_out
from ui.statetree.model import index_rows, layout_key, max_lanes
from vmlog.app import logbook, projects, watch
from vmlog.app.types import VMState, VMStatus, Workspace

BUSY_STATES = (VMState.RUNNING, VMState.PAUSED, VMState.TRANSITIONING)


@dataclass
class ProjectView:
    """Everything the page shows of one project, read in one job."""

    name: str
    info: projects.ProjectDetails
    nodes: list[StateNode]
    current: str | None
    history: list[logbook.HistoryItem] = field(default_factory=list)
    rows: list[TreeRow] | None = None  # the tree laid out already (None: lay it out when shown)
    lanes: int | None = None  # the widest row of ``rows``
    row_of: dict[str, int] | None = None  # the row number of each state id in ``rows``
    rows_key: int | None = None  # fingerprint of ``rows``: the same key, nothing to redraw
    names: dict[str, str] = field(default_factory=dict)  # what the logbook calls each state
    history_rows: list[LogbookRow] | None = None  # the logbook panel's lines, made off the UI thread
    sizes_known: bool | None = None  # some state has a known layer size (the size column is shown)
    history_key: int | None = None  # fingerprint of ``history_rows``
    check_marks: dict[str, CheckMark] = field(default_factory=dict)  # state id -> its last check results

    @property
    def vm(self) -> VMStatus:
        return self.info.vm

    @property
    def busy(self) -> bool:
        """The VM runs (or is on its way), so it can be stopped but not started."""
        return self.vm.state in BUSY_STATES


def summary_of(row: projects.ProjectSummary) -> ProjectSummary:
    """The sidebar's view of one row of ``projects.list_projects``."""
    vm = row.vm or VMStatus(None, "not asked")
    return ProjectSummary(
        name=row.name,
        vm_state=vm.label,
        backend=row.backend,
        base=row.base_label,
        disk_bytes=row.disk_bytes,
        states=row.states,
        vm_reason=vm.reason,
    )


def read_projects(ctx: Workspace | None) -> list[ProjectSummary]:
    return [summary_of(row) for row in projects.list_projects(ctx)]


def read_project(name: str, ctx: Workspace | None) -> ProjectView:
    """One project's page, read and laid out off the UI thread (the tree's rows are ready to show)."""
    page = watch.project_page(name, ctx)
    nodes = [
        StateNode(
            id=s.id,
            parent=s.parent,
            name=s.name,
            created=s.created,
            author=s.author,
            message=s.message,
            layer_bytes=page.layer_sizes.get(s.id),
            memory=bool(s.memory),
        )
        for s in page.states.values()
    ]
    current = page.details.project.current
    rows = lay_out(nodes, current, dirty=bool(page.details.unsaved_changes))
    names = {n.id: (n.name or n.id[:8]) for n in nodes}
    lines = logbook_rows(page.history, names)
    return ProjectView(name, page.details, nodes, current, page.history, rows, max_lanes(rows), index_rows(rows),
                       layout_key(rows), names, lines, not nodes or any(n.layer_bytes is not None for n in nodes),
                       lines_key(lines), read_check_marks(name, ctx))
