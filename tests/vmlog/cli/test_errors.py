"""One error tree, an exit code per class, and the table in docs/errors.md that lists them all.

The codes are checked through the real entry point (``python -m vmlog.cli.main``, and ``run()``
itself), not through typer's CliRunner, which bypasses the mapping in ``vmlog.cli.main.run``.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer

import hypervisors
import vmlog
from hypervisors.errors import ReportableError
from vmlog.cli import main
from vmlog.errors import Cancelled, InvalidInput, NotFound

ROOT = Path(__file__).resolve().parents[3]
TABLE = ROOT / "docs" / "errors.md"

# Classes in modules whose owner has yet to give them their own code: the code docs/errors.md lists for
# each. The test fails once one has it, so that it is taken off this list.
PENDING_CODES = {
}
# Classes to be replaced by the one the table lists (the module is to import that one instead).
REPLACED: dict[str, str] = {}


def every_error_class() -> dict[str, type[ReportableError]]:
    """Import every module of the product, then walk the tree down from the root."""
    for package in (hypervisors, vmlog):
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if module.name.endswith("__main__"):
                continue
            try:
                importlib.import_module(module.name)
            except ImportError as exc:  # an optional SDK missing here; a module of the product must import
                if (exc.name or "").split(".")[0] in ("vmlog", "hypervisors"):
                    raise
    found: dict[str, type[ReportableError]] = {}
    todo: list[type[ReportableError]] = [ReportableError]
    while todo:
        cls = todo.pop()
        if cls.__module__.split(".")[0] in ("vmlog", "hypervisors"):  # not the subclasses tests define
            found[f"{cls.__module__}.{cls.__qualname__}"] = cls
        todo += cls.__subclasses__()
    return found


def documented_codes(section: str) -> dict[str, int]:
    """``{first cell: code}`` of the table under ``## section`` in docs/errors.md."""
    text = TABLE.read_text().split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if section == "Error classes" and len(cells) == 4 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = int(cells[1])
        elif section != "Error classes" and len(cells) == 2 and cells[0].isdigit():
            rows[cells[0]] = int(cells[0])
    return rows


def test_every_error_class_is_in_the_table_with_a_code_of_its_own() -> None:
    classes = every_error_class()
    table = documented_codes("Error classes")
    assert len(classes) > 30  # the walk found the tree, not just the root
    codes: dict[int, str] = {}
    for name, cls in sorted(classes.items()):
        if name in REPLACED:
            assert REPLACED[name] in classes, f"{name} is to be replaced by {REPLACED[name]}, which is missing"
            continue
        assert name in table, f"docs/errors.md does not list {name}"
        own = cls.__dict__.get("exit_code")  # its own, not its parent's
        if name in PENDING_CODES:
            assert own != PENDING_CODES[name], f"{name} has its code now: take it off PENDING_CODES"
            assert table[name] == PENDING_CODES[name]
        else:
            assert own is not None, f"{name} inherits its exit code; give it one of its own (and a row in the table)"
            assert table[name] == own, f"docs/errors.md gives {name} the code {table[name]}, the class {own}"
        assert table[name] not in codes, f"{name} and {codes[table[name]]} share the exit code {table[name]}"
        codes[table[name]] = name
    assert set(table) == set(classes) - set(REPLACED), "docs/errors.md lists classes that do not exist"
    assert set(PENDING_CODES) | set(REPLACED) <= set(classes), "applied: take them off PENDING_CODES / REPLACED"
    assert 0 not in codes and main.INTERNAL_ERROR_EXIT_CODE not in codes


def test_the_codes_of_the_command_line_itself_are_documented() -> None:
    others = documented_codes("Codes that are not an error class")
    assert {0, 1, 2, main.INTERNAL_ERROR_EXIT_CODE, main.INTERRUPTED_EXIT_CODE, main.NO_SPACE_EXIT_CODE} <= set(
        others.values()
    )
    assert InvalidInput.exit_code == 2 and Cancelled.exit_code == main.INTERRUPTED_EXIT_CODE


def test_every_error_has_a_message_and_an_optional_fix() -> None:
    for name, cls in every_error_class().items():
        assert isinstance(cls.exit_code, int) and 0 < cls.exit_code < 256, name
        assert cls.__doc__, f"{name} has no docstring saying what it means"
    error = NotFound("no project called 'x'", fix="`vml project list`")
    assert (error.message, error.fix, str(error)) == (
        "no project called 'x'",
        "`vml project list`",
        "no project called 'x'\n  fix: `vml project list`",
    )
    assert NotFound("gone").fix is None


# -- through the real entry point --------------------------------------------------------------------------
def vml(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmlog.cli.main", *args], capture_output=True, text=True, check=False, timeout=120
    )


def assert_reported(proc: subprocess.CompletedProcess[str], error: type[ReportableError], message: str) -> None:
    assert proc.returncode == error.exit_code, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert lines[1].startswith("  fix: "), proc.stderr
    assert "Traceback" not in proc.stderr


def json_list(proc: subprocess.CompletedProcess[str]) -> list[object]:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_an_unknown_project_exits_with_not_founds_code(vmlog_home: Path) -> None:
    assert_reported(vml("project", "show", "no-such-project"), NotFound, "no project called 'no-such-project'")
    assert_reported(vml("state", "list"), NotFound, "no current project")


def test_an_unknown_backend_is_a_usage_error_before_anything_is_made(vmlog_home: Path, tmp_path: Path) -> None:
    image = tmp_path / "appliance.img"
    image.write_bytes(b"\0" * (1 << 20))
    proc = vml("project", "new", "foo", "--appliance", str(image), "--backend", "nosuch")
    assert_reported(proc, InvalidInput, "unknown backend 'nosuch'")  # typed by the user: exit 2, not 64
    assert "kvm" in proc.stderr and "`vml doctor`" in proc.stderr
    assert json_list(vml("project", "list", "--json")) == []


def test_bad_input_exits_2_like_a_usage_error(vmlog_home: Path) -> None:
    assert_reported(vml("log", "--since", "last tuesday"), InvalidInput, "cannot read --since 'last tuesday'")


# -- run() itself, on an app that fails as a bug would -----------------------------------------------------
def failing_app(error: BaseException) -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)

    @app.command()
    def fail() -> None:
        raise error

    return app


def exit_code_of_run(monkeypatch: pytest.MonkeyPatch, app: typer.Typer) -> int:
    monkeypatch.setattr(main, "app", app)
    monkeypatch.setattr(sys, "argv", ["vml"])
    with pytest.raises(SystemExit) as exited:
        main.run()
    code = exited.value.code
    assert isinstance(code, int)
    return code


def test_anything_else_is_a_one_line_internal_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("VMLOG_DEBUG", raising=False)
    assert exit_code_of_run(monkeypatch, failing_app(ValueError("a value\nthat no one checked"))) == 70
    assert main.INTERNAL_ERROR_EXIT_CODE == 70
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("internal error: ValueError: a value that no one checked")
    assert "VMLOG_DEBUG=1" in line


def test_vmlog_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VMLOG_DEBUG", "1")
    monkeypatch.setattr(sys, "argv", ["vml"])
    for error in (ValueError("bug"), NotFound("gone")):
        monkeypatch.setattr(main, "app", failing_app(error))
        with pytest.raises(type(error)):
            main.run()


def test_the_code_is_the_classs_even_where_an_instance_has_an_exit_code_attribute(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from vmlog.testappliance.agent import GuestCommandFailed

    monkeypatch.delenv("VMLOG_DEBUG", raising=False)
    failed = GuestCommandFailed("false", 3, "")  # the guest command exited 3; vml exits with the class code
    assert exit_code_of_run(monkeypatch, failing_app(failed)) == GuestCommandFailed.exit_code != 3
    err = capsys.readouterr().err
    assert re.match(r"error: command 'false' failed in the guest", err) and "  fix: " in err


def test_ctrl_c_exits_130(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code_of_run(monkeypatch, failing_app(KeyboardInterrupt())) == 130
    assert "Traceback" not in capsys.readouterr().err
