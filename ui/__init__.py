"""vmlog's desktop window (PySide6): a thin layer over the same service functions the ``vml`` CLI calls."""

import os

# libvirt's event loop (which tells the window when a VM changes state) runs GLib's *default* main
# context on its own thread. Qt's GLib event dispatcher uses that same context for the GUI thread,
# so the libvirt thread would fire Qt's timers: a crash. Qt's own dispatcher keeps them apart.
# Must be set before the QApplication exists, hence at import of the package.
os.environ.setdefault("QT_NO_GLIB", "1")
