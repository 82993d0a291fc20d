"""Every fix text (and message) that tells the user to run a `vml` command names a command, and options, that exist."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.main

from vmlog.cli.main import app

ROOT = Path(__file__).resolve().parents[3]
PLACEHOLDER = "\0"  # stands for a {formatted value} of an f-string: an argument the test cannot know
_QUOTED = re.compile(r"`(vml(?:\s[^`]*)?)`")
_BARE = re.compile(r"\bvml\b((?:[ \t]+(?:--?[A-Za-z][\w-]*|[a-z][\w-]*|\0+))*)")

# Fix texts in files whose owner has yet to correct them: (file, command as the test reads it).
# Each one is wrong today; the test fails when one is corrected, so that it is taken off this list.
EXPECTED_FAILURES: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class FixText:
    file: str
    line: int
    text: str
    is_fix: bool  # a ``fix=`` argument, where even a bare ``vml doctor`` is a command; else a message

    def commands(self) -> list[list[str]]:
        return commands_in(self.text, bare=self.is_fix)


def _alternatives(node: ast.expr) -> list[str]:
    """The texts an expression can produce, with PLACEHOLDER for the parts only known at run time."""
    if isinstance(node, ast.Constant):
        return [node.value] if isinstance(node.value, str) else []
    if isinstance(node, ast.JoinedStr):
        return ["".join(v.value if isinstance(v, ast.Constant) else PLACEHOLDER for v in node.values)]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return [a + b for a in _alternatives(node.left) or [PLACEHOLDER] for b in _alternatives(node.right) or [""]]
    if isinstance(node, ast.IfExp):
        return _alternatives(node.body) + _alternatives(node.orelse)
    if isinstance(node, ast.BoolOp):
        return [text for value in node.values for text in _alternatives(value)]
    return []


def fix_texts() -> list[FixText]:
    """Every text given to a call in vmlog/ and hypervisors/: ``fix=`` arguments, messages, lines printed."""
    found = []
    for package in ("vmlog", "hypervisors"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                given: list[tuple[ast.expr, bool]] = []
                if isinstance(node, ast.Call):
                    given += [(arg, False) for arg in node.args]
                    given += [(keyword.value, _names_a_fix(keyword.arg)) for keyword in node.keywords]
                elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    is_fix = any(isinstance(t, ast.Name) and _names_a_fix(t.id) for t in targets)
                    given += [(node.value, True)] if is_fix else []  # fix = f"..."; INSTALL_FIX = "..."
                for value, is_fix in given:
                    found += [FixText(rel, value.lineno, text, is_fix) for text in _alternatives(value)]
    return found


def _names_a_fix(name: str | None) -> bool:
    return bool(name) and re.search(r"(^|_)(fix|hint)$", name, re.IGNORECASE) is not None


def commands_in(text: str, *, bare: bool = True) -> list[list[str]]:
    """The `vml ...` commands a text names, each as its words after ``vml``: backticked ones, and
    with ``bare`` also those written without backticks (up to the first word that is not one)."""
    commands = [quoted.split()[1:] for quoted in _QUOTED.findall(text)]
    if bare:
        commands += [found.split() for found in _BARE.findall(_QUOTED.sub(" ", text))]
    return commands


def problem_with(words: list[str], root: Any) -> str | None:
    """Why ``vml WORDS`` would not run as written, or None: each word names a subcommand until a
    command is reached; after it, every option must be one of that command's."""
    command, path = root, ["vml"]
    rest = list(words)
    while rest and getattr(command, "commands", None) is not None:
        word = rest.pop(0)
        if word.startswith("-"):
            rest.insert(0, word)
            break
        found = command.get_command(None, word)  # loads a lazily imported subcommand
        if found is None:
            return f"`{' '.join(path)}` has no command {word.replace(PLACEHOLDER, '{...}')!r}"
        command = found
        path.append(word)
    known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    for word in rest:
        option = word.split("=", 1)[0]
        if option.startswith("-") and option not in known:
            return f"`{' '.join(path)}` has no option {option}"
    return None


def test_the_reader_of_fix_texts_sees_quoted_bare_and_formatted_commands() -> None:
    text = f"run `vml state rm x --project p`, then vml doctor --repair, then `vml {PLACEHOLDER}`"
    assert commands_in(text) == [["state", "rm", "x", "--project", "p"], [PLACEHOLDER], ["doctor", "--repair"]]
    assert commands_in(text, bare=False) == [["state", "rm", "x", "--project", "p"], [PLACEHOLDER]]
    tree = ast.parse('f(fix=f"run `vml up {name}`" + (" or `vml down`" if a else ""))')
    (call,) = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and n.keywords]
    run_up = f"run `vml up {PLACEHOLDER}`"
    assert _alternatives(call.keywords[0].value) == [f"{run_up} or `vml down`", run_up]
    root = typer.main.get_command(app)
    assert problem_with(["image", "fetch"], root) == "`vml` has no command 'image'"
    assert problem_with([PLACEHOLDER], root) == "`vml` has no command '{...}'"
    assert problem_with(["state", "rm", "x", "--force"], root) == "`vml state rm` has no option --force"
    assert problem_with(["state", "rm", PLACEHOLDER, "--project", PLACEHOLDER], root) is None


def test_every_fix_text_names_a_command_that_exists() -> None:
    root = typer.main.get_command(app)
    texts = fix_texts()
    assert sum(text.is_fix for text in texts) > 100  # the reader finds the fix texts at all
    wrong, still_wrong = [], set()
    for fix in texts:
        for words in fix.commands():
            problem = problem_with(words, root)
            key = (fix.file, " ".join(["vml", *words]).replace(PLACEHOLDER, "{...}"))
            if problem and key in EXPECTED_FAILURES:
                still_wrong.add(key)
            elif problem:
                wrong.append(f"{fix.file}:{fix.line}: {problem}, in {fix.text!r}")
    assert wrong == []
    corrected = EXPECTED_FAILURES - still_wrong
    assert not corrected, f"corrected now, take them off EXPECTED_FAILURES: {sorted(corrected)}"


@pytest.mark.parametrize("words", [["doctor"], ["state", "import", "b.vmlstate", "--trust"], ["release", "source"]])
def test_real_commands_pass(words: list[str]) -> None:
    assert problem_with(words, typer.main.get_command(app)) is None


def test_the_fixes_in_the_error_table_name_commands_that_exist() -> None:
    root = typer.main.get_command(app)
    commands = commands_in((ROOT / "docs" / "errors.md").read_text(), bare=False)
    assert len(commands) > 20
    assert [problem for words in commands if (problem := problem_with(words, root))] == []
