"""The Projects page's Screen action: the VM's display inside a window of vmlog's, or the standard viewer.

The address comes from :func:`vmlog.app.display.display` (what ``vml display`` uses); connecting runs in
a job, so a VM that is slow to answer never freezes the window. :class:`DisplayActions` is mixed into
the projects controller, whose ``window``, ``runner``, ``project`` and ``ctx`` it uses.
"""

from __future__ import annotations

from ui.display_window import DisplayWindow
from ui.rfb import RfbClient
from ui.workers import Job, when_alive
from vmlog.app import display as app_display


class DisplayActions:
    """Opens (or raises) one screen window per project."""

    display_windows: dict[str, DisplayWindow]  # by project, set up by the controller

    def show_display(self) -> Job:
        name, ctx = self.project or (self.view.name if self.view else None), self.ctx
        windows = self.display_windows
        if name in windows and windows[name].isVisible() and windows[name].view.client is not None:
            windows[name].raise_()
            windows[name].activateWindow()

        def connect(progress=None) -> tuple[app_display.Display, RfbClient]:
            shown = app_display.display(name, ctx=ctx)  # the viewer gets the preferred server; the view, VNC
            end = shown.endpoint_for("vnc")
            if end is None:
                raise app_display.Unsupported(f"the screen is served by {shown.endpoint.protocol} only, which only"
                                              " the viewer shows", fix=f"`vml display {name}`")
            return shown, RfbClient.connect(end.host, end.port, unix_socket=end.socket)

        job = Job(connect, title=f"Connecting to the screen of {name}", pass_cancel=False)
        job.signals.finished.connect(when_alive(self, lambda found: self._show_display(found[0].project, *found)))
        return self.runner.start(job)

    def _show_display(self, name: str, shown: app_display.Display, client: RfbClient) -> DisplayWindow:
        windows = self.display_windows
        window = windows.get(name)
        if window is None:
            ctx = self.ctx
            viewers = {protocol: shown.viewer_for(protocol) for protocol in shown.protocols}
            here = (shown.endpoint_for("vnc") or shown.endpoint).uri
            window = DisplayWindow(self.window, name, here, shown.viewer, viewers, preferred=shown.endpoint.protocol,
                                   on_choice=lambda protocol: app_display.set_preferred_protocol(protocol, ctx=ctx))
            windows[name] = window
        window.attach(client)
        window.show()
        window.raise_()
        return window
