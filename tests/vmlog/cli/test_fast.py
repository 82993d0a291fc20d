"""The quick path of ``vml project list``, ``state list`` and ``state tree``: the full CLI's output, not its imports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vmlog.app import projects, states
from vmlog.cli import fast

ROOT = Path(__file__).resolve().parents[3]
# what a listing must not import: the CLI framework, its styling on a pipe, the use cases that write
HEAVY = ("typer", "click", "rich", "httpx", "PySide6", "cryptography", "vmlog.bundles", "vmlog.appliances",
         "vmlog.releases", "vmlog.app.projects", "vmlog.app.states", "vmlog.app.session", "vmlog.cli.project",
         "vmlog.cli.state", "vmlog.cli.output")  # fmt: skip
FULL = "from vmlog.cli import main; main.app; main.run()"  # an app already built: the full CLI answers
QUICK = "from vmlog.cli.main import run; run()"


def vml(code: str, *args: str, importtime: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("FORCE_COLOR", None)
    env.pop("TTY_COMPATIBLE", None)
    flags = ["-X", "importtime"] if importtime else []
    return subprocess.run([sys.executable, *flags, "-c", code, *args], capture_output=True, text=True, env=env,
                          timeout=120, check=False)  # fmt: skip


def imported(proc: subprocess.CompletedProcess[str]) -> set[str]:
    return {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


@pytest.fixture
def two_projects(vmlog_home: Path, tmp_path: Path) -> None:
    image = tmp_path / "appliance.img"
    image.write_bytes(b"\0" * (1 << 20))
    projects.new_project("alpha", str(image))
    projects.new_project("beta-with-a-long-name-x", str(image), scratch_size="1M")
    states.save_state("alpha", name="first", message="clean install")
    states.save_state("alpha", message="a [bold]message[/] with \x1b[31m escapes")
    states.save_state("alpha", name="third", message="third", memory=False)


def test_the_parser_takes_only_the_plain_forms() -> None:
    assert fast.parse(["project", "list"]) is not None
    assert fast.parse(["project", "list", "--json"]) is not None
    assert fast.parse(["state", "list", "-p", "x", "--json"]) is not None
    assert fast.parse(["state", "list", "--project=x"]) is not None
    assert fast.parse(["state", "tree", "--json"]) is not None
    for argv in (["project", "list", "--help"], ["project", "list", "-p", "x"], ["project", "list", "--json", "--json"],
                 ["state", "list", "--remote", "r/x"], ["state", "list", "-p"], ["state", "list", "-p", "--json"],
                 ["state", "list", "-p", "a", "-p", "b"], ["state", "show"], ["project"], [], ["--json"]):  # fmt: skip
        assert fast.parse(argv) is None, argv


@pytest.mark.usefixtures("two_projects")
@pytest.mark.parametrize(
    "args",
    [
        ("project", "list"),
        ("project", "list", "--json"),
        ("state", "list", "-p", "alpha"),
        ("state", "list", "--json", "--project", "alpha"),
        ("state", "list"),  # the current project: the last one created
        ("state", "list", "-p", "nosuch"),
        ("state", "list", "-p", "nosuch", "--json"),
        ("state", "tree", "-p", "alpha"),
        ("state", "tree", "--json", "-p", "alpha"),
        ("state", "tree"),  # a project with no states
        ("state", "tree", "-p", "nosuch"),
    ],
)
def test_the_quick_answer_is_the_full_clis(args: tuple[str, ...]) -> None:
    quick, full = vml(QUICK, *args), vml(FULL, *args)
    assert (quick.returncode, quick.stdout, quick.stderr) == (full.returncode, full.stdout, full.stderr)
    assert quick.stdout or quick.stderr


def test_no_projects_says_so_like_the_full_cli(vmlog_home: Path) -> None:
    quick, full = vml(QUICK, "project", "list"), vml(FULL, "project", "list")
    assert (quick.returncode, quick.stdout, quick.stderr) == (full.returncode, full.stdout, full.stderr)
    assert "no projects yet" in quick.stderr


@pytest.mark.usefixtures("two_projects")
@pytest.mark.parametrize("args", [("project", "list"), ("project", "list", "--json"), ("state", "list", "--json"),
                                  ("state", "tree", "-p", "alpha")])  # fmt: skip
def test_a_listing_imports_neither_typer_nor_the_use_cases(args: tuple[str, ...]) -> None:
    proc = vml(QUICK, *args, importtime=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    modules = imported(proc)
    assert "vmlog.cli.fast" in modules  # the reader of -X importtime works
    assert heavy(modules) == []


def test_ctrl_c_is_reported_as_the_full_cli_reports_it(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    def interrupted(as_json: bool) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(fast, "project_list", interrupted)
    assert fast.answer(["project", "list"]) == 130
    assert capsys.readouterr().err.startswith("\naborted")


def test_a_native_snapshot_tree_is_left_to_the_full_cli(monkeypatch: pytest.MonkeyPatch, two_projects: None) -> None:
    from vmlog.app import listings

    monkeypatch.setattr(listings, "_keeps_native_snapshots", lambda project: True)
    assert fast.answer(["state", "tree", "-p", "alpha"]) is None
