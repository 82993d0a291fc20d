"""``vml`` starts without importing its commands: only the command that runs is imported, and listings agree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from vmlog.cli import lazy, registry
from vmlog.cli.main import APP_HELP, COMMANDS, app

ROOT = Path(__file__).resolve().parents[3]
# what start-up must not pay for: the backends, the domain's heavy packages, the use cases, the GUI, rich
HEAVY = ("libvirt", "PySide6", "rich", "vmlog.bundles", "vmlog.appliances", "vmlog.app", "vmlog.projects",
         "vmlog.store", "vmlog.releases", "hypervisors.libvirt", "cryptography")  # fmt: skip


def imported_by(*args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "vmlog.cli", *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    modules = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    return proc, modules


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


@pytest.mark.parametrize("args", [("--version",), ("--help",), ("-h",)])
def test_start_up_imports_no_command(args: tuple[str, ...]) -> None:
    proc, modules = imported_by(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "vmlog.cli.main" in modules  # the reader of -X importtime works
    assert heavy(modules) == []
    assert "typer" not in modules  # answered before typer is imported
    allowed = {"vmlog.cli.main", "vmlog.cli.registry", "vmlog.cli.errors_out", "vmlog.cli.__main__"}
    assert not any(m.startswith("vmlog.cli.") and m not in allowed for m in modules)


def test_a_command_imports_only_its_own_module() -> None:
    proc, modules = imported_by("catalog", "--help")
    assert proc.returncode == 0
    assert "vmlog.cli.catalog" in modules
    assert not {"vmlog.cli.bundle", "vmlog.cli.setup", "vmlog.cli.state", "vmlog.cli.release"} & modules


# what a command that looks at a project or saves a state must not pay for: reading and signing bundles,
# mounting releases, CernVM-FS repositories and seeds, appliance downloads (and pydantic, which typer 0.29
# imports at every command's start)
NOT_FOR_A_LOOK = ("vmlog.bundles.reader", "vmlog.bundles.writer", "vmlog.bundles.signing", "vmlog.projects.releases",
                  "vmlog.releases.cvmfs_source", "vmlog.context.project_setup", "vmlog.appliances", "pydantic",
                  "cryptography")  # fmt: skip


@pytest.mark.parametrize("args", [("status", "no"), ("log", "no"), ("up", "--help"), ("state", "save", "--help")])
def test_a_look_at_a_project_imports_no_bundle_or_release_module(
    args: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VMLOG_HOME", str(tmp_path))
    proc, modules = imported_by(*args)
    assert "vmlog.app.projects" in modules, proc.stderr[-2000:]  # the command's use cases were imported
    assert sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in NOT_FOR_A_LOOK)) == []


def test_the_listed_help_is_each_commands_own() -> None:
    def check(entries: tuple[lazy.Lazy, ...]) -> None:
        for entry in entries:
            loaded = lazy.load_command(entry)
            assert lazy.summary(lazy.stand_in(entry)) == lazy.summary(loaded), entry.name
            check(entry.subcommands)

    check(COMMANDS)


def test_every_command_is_reachable_with_its_options() -> None:
    root = typer.main.get_command(app)
    names = root.list_commands(None)  # type: ignore[arg-type]
    assert names == [entry.name for entry in COMMANDS]
    state = root.get_command(None, "state")  # type: ignore[arg-type]
    assert {"save", "list", "export", "import", "send", "inspect"} <= set(state.list_commands(None))
    export = state.get_command(None, "export")
    assert "--since" in {opt for param in export.params for opt in param.opts}


def test_dash_h_is_help_everywhere() -> None:
    for args in (["-h"], ["state", "-h"], ["state", "list", "-h"], ["release", "source", "-h"]):
        proc = subprocess.run(
            [sys.executable, "-m", "vmlog.cli", *args], capture_output=True, text=True, timeout=120, check=False,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        assert proc.returncode == 0, (args, proc.stderr)
        assert "Usage: vml" in proc.stdout


def test_shell_completion_completes_lazy_commands() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "_VML_COMPLETE": "complete_bash", "COMP_WORDS": "vml sta",
           "COMP_CWORD": "1"}  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "vmlog.cli"], capture_output=True, text=True, env=env, timeout=120)
    assert {"state", "status"} <= set(proc.stdout.split()), proc.stdout + proc.stderr
    env.update(COMP_WORDS="vml state li", COMP_CWORD="2")
    proc = subprocess.run([sys.executable, "-m", "vmlog.cli"], capture_output=True, text=True, env=env, timeout=120)
    assert "list" in proc.stdout.split(), proc.stdout + proc.stderr


@pytest.mark.parametrize("columns", [40, 60, 80, 100, 200])
def test_the_quick_help_is_the_help_click_prints(monkeypatch: pytest.MonkeyPatch, columns: int) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    root = typer.main.get_command(app)
    context_class = type(root.make_context("vml", ["--version"], resilient_parsing=True))
    expected = root.get_help(context_class(root, info_name="vml", **root.context_settings)) + "\n"
    assert registry.quick_help("vml", APP_HELP, COMMANDS) == expected
