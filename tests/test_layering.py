"""The dependency direction ui -> vmlog -> hypervisors, and a core free of Qt and of CLI libraries."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GUI_MODULES = {"PySide6", "PyQt5", "PyQt6", "ui"}
CLI_MODULES = {"typer", "click", "rich"}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def python_files(package: str) -> list[Path]:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no Python files under {package}/"
    return files


def test_hypervisors_import_nothing_of_vmlog_ui_or_cli_libraries() -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(imported_roots(p) & ({"vmlog"} | GUI_MODULES | CLI_MODULES))
        for p in python_files("hypervisors")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_core_imports_no_gui_and_cli_libraries_only_in_cli() -> None:
    offenders = {}
    for path in python_files("vmlog"):
        rel = path.relative_to(ROOT)
        banned = set(GUI_MODULES)
        if rel.parts[:2] != ("vmlog", "cli"):
            banned |= CLI_MODULES
        bad = imported_roots(path) & banned
        if bad:
            offenders[str(rel)] = sorted(bad)
    assert offenders == {}


def test_importing_every_core_module_loads_no_qt() -> None:
    modules = []
    for package in ("hypervisors", "vmlog"):
        for path in python_files(package):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__main__":
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules.append(".".join(parts))
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    try:\n"
        "        importlib.import_module(m)\n"
        "    except ImportError:\n"
        "        pass  # an optional backend SDK missing here; the layering is what is checked\n"
        "qt = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'PyQt5', 'PyQt6', 'ui'))\n"
        "print(','.join(qt))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert proc.stdout.strip() == ""
