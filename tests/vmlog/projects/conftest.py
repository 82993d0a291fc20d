"""Fixtures for project tests: a vmlog home with a small raw base image and a project on it."""

from __future__ import annotations

from pathlib import Path

import pytest
from chain_helpers import write_pattern

from vmlog.app import projects
from vmlog.projects.store import ProjectFiles
from vmlog.workspace import Workspace

BASE_SIZE = 4 * 1024 * 1024


@pytest.fixture
def base_image(tmp_path: Path) -> Path:
    path = tmp_path / "base.img"
    path.write_bytes(b"\0" * BASE_SIZE)
    write_pattern(path, 0x11, 0, 1024 * 1024, fmt="raw")
    return path


@pytest.fixture
def ctx(vmlog_home: Path) -> Workspace:
    return Workspace.default()


@pytest.fixture
def project_files(ctx: Workspace, base_image: Path) -> ProjectFiles:
    projects.new_project("alpha", str(base_image), ctx=ctx)
    return ctx.projects.get("alpha")
