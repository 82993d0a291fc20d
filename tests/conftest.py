"""Fixtures shared by the whole suite: an isolated vmlog home per test, offscreen Qt."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture
def vmlog_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty ``VMLOG_HOME`` for one test (one variable moves everything)."""
    root = tmp_path / "vmlog-home"
    root.mkdir()
    monkeypatch.setenv("VMLOG_HOME", str(root))
    return root
