"""Fixtures for release tests: a signed CernVM-FS-format repository and an HTTP release tree, served for real."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from release_repos import RELEASE_FILES, CvmfsRepoBuilder, HttpTreeBuilder, ServedDirectory


@pytest.fixture
def cvmfs_repo(tmp_path: Path) -> CvmfsRepoBuilder:
    """A published repository: releases under sw/software/<series>/<release>, one nested catalog per series."""
    builder = CvmfsRepoBuilder(tmp_path / "www")
    for series in ("24.0", "25.1"):
        builder.add_dir(f"sw/software/{series}", nested=True)
    builder.add_dir("sw/software/24.0/24.0.3", nested=True)  # a catalog nested two levels deep
    for path, data in RELEASE_FILES.items():
        builder.add_file(f"sw/software/{path}", data, chunk_size=64 * 1024)
    builder.add_link("sw/software/24.0/24.0.3/bin/latest", "setup.sh")
    builder.publish(7, "prod-2024")
    return builder


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServedDirectory]:
    (tmp_path / "www").mkdir(exist_ok=True)
    served = ServedDirectory(tmp_path / "www")
    yield served
    try:
        served.stop()
    except OSError:
        pass


@pytest.fixture
def tree_repo(tmp_path: Path) -> HttpTreeBuilder:
    builder = HttpTreeBuilder(tmp_path / "www" / "tree")
    for path, data in RELEASE_FILES.items():
        builder.add_file(f"releases/{path}", data)
    builder.add_link("releases/24.0/24.0.3/bin/latest", "setup.sh")
    builder.publish(3, "june")
    return builder
