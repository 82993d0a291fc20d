"""VMLOG_HOME moves everything; socket paths stay short enough for the kernel."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmlog import paths


def test_vmlog_home_moves_every_directory(vmlog_home: Path) -> None:
    home = paths.home().ensure()
    for directory in (home.config, home.data, home.cache, home.runtime, home.images, home.projects, home.locks):
        assert directory.is_relative_to(vmlog_home), directory
        assert directory.is_dir()


def test_home_id_is_stable_and_differs_between_homes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VMLOG_HOME", str(tmp_path / "alice"))
    alice = paths.home().home_id
    assert paths.home().home_id == alice
    monkeypatch.setenv("VMLOG_HOME", str(tmp_path / "bob"))
    assert paths.home().home_id != alice


def test_socket_dirs_fit_the_unix_socket_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deep = tmp_path / ("very-long-directory-name-" * 6)
    monkeypatch.setenv("VMLOG_HOME", str(deep))
    home = paths.home()
    sockets = home.vm_runtime_dir("vmlog-0123abcd-a-project-with-a-long-name")
    assert len(str(sockets / "channel.sock")) < 108
    assert sockets == home.vm_runtime_dir("vmlog-0123abcd-a-project-with-a-long-name")  # every process agrees
    monkeypatch.setenv("VMLOG_HOME", "/srv/h")  # a short home keeps its sockets inside (nothing is created)
    assert paths.home().vm_runtime_dir("vm") == Path("/srv/h/run/vms/vm")
