"""Desktop notifications when long work ends: the freedesktop notification service over D-Bus, else the tray.

A job the user started that ran at least ``LONG_JOB_S`` seconds says how it ended, so a setup or an export
can run while the user works elsewhere. ``sent`` keeps what was said (the tests read it).
"""

from __future__ import annotations

import time

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QSystemTrayIcon, QWidget

from ui.workers import Job, JobRunner

LONG_JOB_S = 10.0
APP_NAME = "vmlog"


def _dbus_notify(title: str, body: str) -> bool:
    """Ask org.freedesktop.Notifications to show it; False where there is no session bus or no such service."""
    try:
        from PySide6.QtDBus import QDBusConnection, QDBusInterface, QDBusMessage
    except ImportError:
        return False
    bus = QDBusConnection.sessionBus()
    if not bus.isConnected():
        return False
    service = QDBusInterface("org.freedesktop.Notifications", "/org/freedesktop/Notifications",
                             "org.freedesktop.Notifications", bus)
    if not service.isValid():
        return False
    reply = service.call("Notify", APP_NAME, 0, "io.github.vmlog.Vmlog", title, body, [], {}, 8000)
    return reply.type() != QDBusMessage.MessageType.ErrorMessage


class Notifier(QObject):
    """Watches a runner's jobs; tells the desktop when a long one ends."""

    def __init__(self, runner: JobRunner, window: QWidget, *, long_job_s: float = LONG_JOB_S) -> None:
        super().__init__(window)
        self.window = window
        self.long_job_s = long_job_s
        self.started: dict[int, float] = {}
        self.sent: list[tuple[str, str]] = []
        self.tray: QSystemTrayIcon | None = None
        runner.job_started.connect(self._started)
        runner.job_done.connect(self._done)

    def _started(self, job: Job) -> None:
        self.started[id(job)] = time.monotonic()

    def _done(self, job: Job) -> None:
        began = self.started.pop(id(job), None)
        if began is None or time.monotonic() - began < self.long_job_s:
            return
        title = job.title or "vmlog"
        if job.failure is not None:
            self.notify(f"{title} failed", job.failure.message)
        elif job.was_cancelled:
            self.notify(f"{title}: cancelled", "Stopped as asked.")
        else:
            self.notify(f"{title}: done", "Finished.")

    def notify(self, title: str, body: str) -> None:
        self.sent.append((title, body))
        if _dbus_notify(title, body):
            return
        if QSystemTrayIcon.isSystemTrayAvailable():
            if self.tray is None:
                self.tray = QSystemTrayIcon(self.window.windowIcon(), self)
                self.tray.show()
            self.tray.showMessage(title, body, QSystemTrayIcon.MessageIcon.Information, 8000)
