"""Progress as the user reads it: a bar, what is happening, the rate and time left, and a Cancel button.

Services report progress in two shapes: ``(done_bytes, total_bytes | None)`` for transfers and
``(message, fraction | None)`` for steps; setup reports phase events (``phase``, ``message``, and
``done``/``total`` bytes while downloading). :class:`ProgressReading` turns each into text, and
works out rate and ETA from the byte counts it sees over time.
"""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from ui.formatting import duration, human_bytes
from ui.workers import Job


class ProgressReading:
    """Keeps the last progress report and a short window of byte counts for the rate."""

    WINDOW = 5.0  # seconds of samples the rate is averaged over

    def __init__(self) -> None:
        self.samples: list[tuple[float, int]] = []
        self.fraction: float | None = None
        self.text = ""

    def update(self, value: object, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if getattr(value, "phase", None) is not None:  # a setup event
            done, total = getattr(value, "done", None), getattr(value, "total", None)
            message = str(getattr(value, "message", ""))
            if done is not None:
                self.update((int(done), total), now)
                self.text = f"{message} · {self.text}" if message else self.text
            else:
                self.samples.clear()
                self.text, self.fraction = message, None
            return
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], int):
            done, total = value
            self.samples.append((now, done))
            while len(self.samples) > 2 and now - self.samples[0][0] > self.WINDOW:
                self.samples.pop(0)
            self.fraction = done / total if total else None
            parts = [f"{human_bytes(done)} of {human_bytes(total)}" if total else human_bytes(done)]
            rate = self.rate()
            if rate:
                parts.append(f"{human_bytes(rate)}/s")
                if total:
                    parts.append(f"{duration((total - done) / rate)} left")
            self.text = " · ".join(parts)
        elif isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
            self.text = value[0]
            self.fraction = float(value[1]) if value[1] is not None else None
        elif isinstance(value, str):
            self.text = value
        elif isinstance(value, dict):
            self.text = str(value.get("message") or value.get("stage") or "")
            fraction = value.get("fraction")
            self.fraction = float(fraction) if fraction is not None else self.fraction

    def rate(self) -> float | None:
        if len(self.samples) < 2:
            return None
        (t0, b0), (t1, b1) = self.samples[0], self.samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 > t0 and b1 >= b0 else None


class JobProgress(QWidget):
    """One running job: title, bar, detail line, Cancel. Removes nothing itself; owners listen to ``closed``."""

    closed = Signal()

    def __init__(self, job: Job, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.job = job
        self.reading = ProgressReading()
        self.title = QLabel(job.title or "Working")
        self.title.setStyleSheet("font-weight: 600")
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)
        self.bar.setTextVisible(False)
        self.bar.setFixedHeight(8)
        self.detail = QLabel("")
        self.detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self._cancel)
        self.cancel_button.setVisible(job.cancellable)  # a button that cannot stop the work is not offered
        top = QHBoxLayout()
        top.addWidget(self.title)
        top.addStretch(1)  # Cancel keeps its size when an owner hides the title
        top.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 4)
        layout.setSpacing(4)
        layout.addLayout(top)
        layout.addWidget(self.bar)
        layout.addWidget(self.detail)
        job.signals.progress.connect(self.on_progress)
        job.signals.done.connect(self._on_done)

    def on_progress(self, value: object) -> None:
        self.reading.update(value)
        if self.reading.fraction is None:
            self.bar.setRange(0, 0)
        else:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(max(0.0, min(1.0, self.reading.fraction)) * 1000))
        self.detail.setText(self.reading.text)

    def _cancel(self) -> None:
        self.job.cancel()
        self.cancel_button.setEnabled(False)
        self.detail.setText("Cancelling…")

    def _on_done(self) -> None:
        self.cancel_button.setEnabled(False)
        self.closed.emit()
