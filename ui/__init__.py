"""vmlog's desktop window (PySide6): a thin layer over the same service functions the ``vml`` CLI calls."""
