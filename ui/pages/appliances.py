"""The Appliances page (layout only): catalog entries with a one-click "Set up" and the setup's progress.

A setup job reports its phases (``vmlog.setup.events.SetupEvent``: download, verify, contextualise,
boot, ready); the page ticks them off and shows the transfer rate and time left while the image
downloads. Cancel stops it cleanly: the service keeps the partial download for next time and leaves
no half-made project. "New project…" makes a project on an image already in the store.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from ui.formatting import human_bytes
from ui.progress import JobProgress
from ui.workers import Job

SETUP_STEPS = ("Download", "Verify", "Contextualise", "Boot", "Ready")
# which step each of the setup service's phases belongs to (``backend`` comes before any step)
PHASE_STEPS = {
    "download": "Download",
    "verify": "Verify",
    "convert": "Verify",
    "project": "Contextualise",
    "contextualise": "Contextualise",
    "boot": "Boot",
    "ready": "Ready",
    "done": "Ready",
}


@dataclass(frozen=True)
class ApplianceCard:
    """One catalog entry as the page shows it."""

    key: str  # what the setup service is given ("name" or "name:version")
    name: str
    version: str
    summary: str
    size: int | None
    catalog: str
    stored: bool  # the image is already in the store (set up needs no download)
    built_locally: bool = False  # made on this machine from distribution packages


class ApplianceTile(QFrame):
    setup_requested = Signal(str)

    def __init__(self, card: ApplianceCard, parent=None) -> None:
        super().__init__(parent)
        self.card = card
        self.setObjectName("tile")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        title = QLabel(f"{card.name} <span style='color: palette(mid)'>{card.version}</span>")
        title.setObjectName("tile-title")
        summary = QLabel(card.summary)
        summary.setWordWrap(True)
        where = "built on this machine" if card.built_locally else "download needed"
        where = "in the store" if card.stored else where
        facts = [card.catalog, human_bytes(card.size), where]
        detail = QLabel(" · ".join(f for f in facts if f))
        detail.setObjectName("muted")
        self.button = QPushButton("Set up")
        self.button.setObjectName(f"setup-{card.key}")
        self.button.setDefault(True)
        self.button.clicked.connect(lambda: self.setup_requested.emit(card.key))
        row = QHBoxLayout()
        row.addWidget(detail, 1)
        row.addWidget(self.button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 14, 16, 14)
        layout.setSpacing(8)
        layout.addWidget(title)
        layout.addWidget(summary)
        layout.addLayout(row)


class SetupProgress(QFrame):
    """The running setup: steps with ticks, and the job's bar, rate/ETA and Cancel button."""

    def __init__(self, job: Job, appliance: str, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("tile")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.steps: dict[str, QLabel] = {}
        self.current_step: str | None = None
        heading = QLabel(f"Setting up {appliance}")
        heading.setObjectName("tile-title")
        steps_row = QHBoxLayout()
        steps_row.setSpacing(18)
        for step in SETUP_STEPS:
            label = QLabel(f"○ {step}")
            label.setObjectName("muted")
            self.steps[step] = label
            steps_row.addWidget(label)
        steps_row.addStretch(1)
        self.progress = JobProgress(job, self)
        self.progress.title.setVisible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 14, 16, 14)
        layout.addWidget(heading)
        layout.addLayout(steps_row)
        layout.addWidget(self.progress)
        job.signals.progress.connect(self._on_progress)
        job.signals.finished.connect(lambda _result: self._mark_all("✓"))

    def _on_progress(self, value: object) -> None:
        step = PHASE_STEPS.get(str(getattr(value, "phase", "")))
        if step is not None and step != self.current_step:
            self._advance(step)

    def _advance(self, step: str) -> None:
        order = list(SETUP_STEPS)
        for earlier in order[: order.index(step)]:
            self.steps[earlier].setText(f"✓ {earlier}")
        self.steps[step].setText(f"● {step}")
        self.steps[step].setObjectName("")
        self.steps[step].setStyleSheet("font-weight: 600")
        self.current_step = step

    def _mark_all(self, mark: str) -> None:
        for step, label in self.steps.items():
            label.setText(f"{mark} {step}")


class AppliancesPage(QWidget):
    setup_requested = Signal(str)
    new_project_requested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.title = QLabel("Appliances")
        self.title.setObjectName("page-title")
        subtitle = QLabel("Ready-made virtual machines from your catalogs. Set up downloads, verifies and boots one.")
        subtitle.setObjectName("page-subtitle")
        subtitle.setWordWrap(True)
        self.new_project = QPushButton("New project…")
        self.new_project.setObjectName("new-project")
        self.new_project.setToolTip("Make a project on an appliance image already in the store")
        self.new_project.clicked.connect(self.new_project_requested)
        header = QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addWidget(self.new_project)
        self.progress_area = QVBoxLayout()
        self.grid = QGridLayout()
        self.grid.setSpacing(12)
        inner = QWidget()
        inner_layout = QVBoxLayout(inner)
        inner_layout.setContentsMargins(0, 0, 0, 0)
        inner_layout.addLayout(self.grid)
        inner_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(inner)
        self.catalog_note = QLabel()  # a catalog shown from its kept copy, or not readable at all
        self.catalog_note.setObjectName("catalog-note")
        self.catalog_note.setWordWrap(True)
        self.catalog_note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.catalog_note.setVisible(False)
        self.empty = QLabel("No catalog entries yet. Add a catalog with File ▸ Add catalog…")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setObjectName("muted")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 16, 20, 16)
        layout.setSpacing(12)
        layout.addLayout(header)
        layout.addWidget(subtitle)
        layout.addWidget(self.catalog_note)
        layout.addLayout(self.progress_area)
        layout.addWidget(self.empty)
        layout.addWidget(scroll, 1)
        self.tiles: dict[str, ApplianceTile] = {}
        self.setups: dict[str, SetupProgress] = {}

    def set_cards(self, cards: list[ApplianceCard]) -> None:
        for tile in self.tiles.values():
            self.grid.removeWidget(tile)
            tile.deleteLater()
        self.tiles.clear()
        for i, card in enumerate(cards):
            tile = ApplianceTile(card)
            tile.setup_requested.connect(self.setup_requested)
            self.tiles[card.key] = tile
            self.grid.addWidget(tile, i // 2, i % 2)
        self.empty.setVisible(not cards)

    def set_catalog_notes(self, notes: list[str]) -> None:
        """Say which catalogs could not be reached (their appliances shown from the copy kept, of that date)."""
        self.catalog_note.setText("\n".join(f"\u26a0 {note}" for note in notes))
        self.catalog_note.setVisible(bool(notes))

    def show_setup(self, key: str, job: Job) -> SetupProgress:
        card = self.tiles[key].card if key in self.tiles else None
        view = SetupProgress(job, f"{card.name} {card.version}" if card else key)
        self.setups[key] = view
        self.progress_area.addWidget(view)
        if key in self.tiles:
            self.tiles[key].button.setEnabled(False)

        def finished() -> None:
            if key in self.tiles:
                self.tiles[key].button.setEnabled(True)
            self.progress_area.removeWidget(view)
            self.setups.pop(key, None)
            view.deleteLater()

        job.signals.done.connect(finished)
        return view
