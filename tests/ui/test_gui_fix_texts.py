"""The GUI's own hints and fix texts that name a `vml` command name one, with options, that exists.

The core's texts are checked by tests/vmlog/cli/test_fix_texts.py; this applies the same reader of
commands to every text the GUI passes to a call (labels, dialogs, errors) or keeps in a ``*_fix`` name.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import typer.main

from vmlog.cli.main import app

ROOT = Path(__file__).resolve().parents[2]


def _core_reader() -> ModuleType:
    """The reader of fix texts the core's test uses (loaded from its file: test modules are not a package)."""
    path = ROOT / "tests" / "vmlog" / "cli" / "test_fix_texts.py"
    spec = importlib.util.spec_from_file_location("core_fix_text_reader", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_every_gui_text_that_names_a_vml_command_names_one_that_exists() -> None:
    reader = _core_reader()
    root = typer.main.get_command(app)
    named, wrong = 0, []
    for path in sorted((ROOT / "ui").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, ast.Call):
                continue
            given = [(arg, False) for arg in node.args]
            given += [(keyword.value, reader._names_a_fix(keyword.arg)) for keyword in node.keywords]
            for value, is_fix in given:
                for text in reader._alternatives(value):
                    for words in reader.commands_in(text, bare=is_fix):
                        named += 1
                        if problem := reader.problem_with(words, root):
                            wrong.append(f"{path.relative_to(ROOT)}:{value.lineno}: {problem}, in {text!r}")
    assert named >= 3  # the reader finds the GUI's commands at all (`vml display`, `vml context new|edit`)
    assert wrong == []
