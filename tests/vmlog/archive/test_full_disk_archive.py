"""A full disk while archiving and unarchiving (a small tmpfs): a clear error, nothing partial left.

Two cases each way: the free-space check refuses before writing, and (the check's estimate made to
pass) the disk really fills mid-write, which must still leave no partial archive, project or store entry.
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from archive_fixtures import three_state_project

from vmlog.app import archive as app_archive
from vmlog.app.archive import archive_project, unarchive_project
from vmlog.errors import VmlogError
from vmlog.paths import home_under
from vmlog.workspace import Workspace


def everything_under(root: Path) -> list[str]:
    """Every file under ``root`` except the logbook and lock files (which a refused command may create)."""
    kept = ("logbook.sqlite", "logbook.sqlite-journal")
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and not p.name.endswith(kept) and "locks" not in p.relative_to(root).parts)


def no_space(error: BaseException) -> bool:
    """Whether ``error`` or one of its causes is the kernel's 'no space left on device'."""
    current: BaseException | None = error
    while current is not None:
        if isinstance(current, OSError) and current.errno == errno.ENOSPC:
            return True
        current = current.__cause__ or current.__context__
    return False


def test_archive_onto_a_full_disk_is_refused_before_writing(vmlog_home: Path, tmp_path: Path, small_disk) -> None:
    made = three_state_project(vmlog_home, tmp_path)
    out = small_disk("out", "1M")
    with pytest.raises(VmlogError, match="free; nothing was written") as failed:
        archive_project("analysis", out / "a.vmlarchive", ctx=made.ctx)
    assert "free space on the disk holding" in (failed.value.fix or "")
    assert list(out.iterdir()) == []


def test_a_disk_that_fills_mid_archive_leaves_no_partial_file(vmlog_home: Path, tmp_path: Path, small_disk,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    made = three_state_project(vmlog_home, tmp_path)
    out = small_disk("out", "256k")
    monkeypatch.setattr(app_archive, "_check_space", lambda *a, **k: None)  # an estimate that was wrong
    with pytest.raises(BaseException) as failed:  # noqa: PT011 - the kernel's error, in whatever wrapping
        archive_project("analysis", out / "a.vmlarchive", ctx=made.ctx)
    assert no_space(failed.value) or "space" in str(failed.value), failed.value
    assert list(out.iterdir()) == []
    (row,) = [e for e in made.ctx.logbook.entries(project="analysis") if e.action == "project archive"]
    assert row.outcome == "failed"


@pytest.fixture
def archived(vmlog_home: Path, tmp_path: Path) -> Path:
    made = three_state_project(vmlog_home, tmp_path)
    return archive_project("analysis", tmp_path / "analysis.vmlarchive", ctx=made.ctx).path


def test_unarchive_into_a_full_home_is_refused_before_writing(archived: Path, small_disk) -> None:
    root = small_disk("home-b", "2M")
    receiver = Workspace.of(home_under(root))
    before = everything_under(root)
    with pytest.raises(VmlogError, match="free; nothing was written"):
        unarchive_project(archived, ctx=receiver)
    assert receiver.projects.names() == [] and receiver.images.list() == []
    assert everything_under(root) == before


def test_a_home_that_fills_mid_unarchive_is_left_as_it_was(archived: Path, small_disk,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    root = small_disk("home-b", "1M")
    receiver = Workspace.of(home_under(root))
    before = everything_under(root)
    monkeypatch.setattr(app_archive, "_check_space", lambda *a, **k: None)
    with pytest.raises(BaseException) as failed:  # noqa: PT011 - the kernel's error, in whatever wrapping
        unarchive_project(archived, ctx=receiver)
    assert no_space(failed.value) or "space" in str(failed.value), failed.value
    assert receiver.projects.names() == [] and receiver.images.list() == []
    assert everything_under(root) == before
