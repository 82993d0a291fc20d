"""The architecture as tests: who may import whom, no import cycles, small modules, backend formats only in backends.

Layers, top to bottom (docs/architecture.md): the CLI (``vmlog.cli``) and the GUI (``ui``); ``vml setup`` and the
demo (``vmlog.setup``, ``vmlog.demo``); the use cases (``vmlog.app``); the domain (every other ``vmlog`` package);
the hypervisor backends (``hypervisors``). A module imports its own layer or those below; the layers above the
use cases see vmlog only through ``vmlog.app`` (and the product's errors).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("hypervisors", "vmlog", "ui")
GUI_MODULES = {"PySide6", "PyQt5", "PyQt6", "ui"}
CLI_MODULES = {"typer", "click", "rich"}
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80
# What the layers above the use cases may import of vmlog: the use cases, the errors, the version.
CLIENT_MAY_USE = ("vmlog.app", "vmlog.errors")


def python_files(package: str) -> list[Path]:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no Python files under {package}/"
    return files


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for package in PACKAGES for p in python_files(package)}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def _known(name: str) -> str | None:
    """The project module ``name`` names, or its closest enclosing package that is one."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    """The project modules ``module`` imports anywhere (top level or inside functions), resolved to files."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from pkg import sub`` imports the submodule when there is one, else a name of pkg
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        found.update(k for k in map(_known, names) if k and k != module)
    return found


GRAPH = {module: imports_of(module) for module in MODULES}


def within(module: str, *packages: str) -> bool:
    """Whether ``module`` is one of ``packages`` or inside one (``vmlog.appliances`` is not in ``vmlog.app``)."""
    return any(module == package or module.startswith(package + ".") for package in packages)


def layer(module: str) -> int:
    if within(module, "hypervisors"):
        return 0
    if within(module, "vmlog.cli", "ui"):
        return 4
    if within(module, "vmlog.setup", "vmlog.demo"):
        return 3
    if within(module, "vmlog.app"):
        return 2
    return 1


def test_every_import_points_down_or_sideways() -> None:
    upward = {
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if layer(target) > layer(module) and not (layer(module) == 4 and layer(target) == 3)
    }
    assert sorted(upward) == []


def test_cli_gui_setup_and_demo_see_vmlog_only_through_the_use_cases() -> None:
    def allowed(module: str, target: str) -> bool:
        if layer(target) >= 3 or target == "vmlog":
            return True
        return within(target, *CLIENT_MAY_USE)

    leaks = {
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        if layer(module) >= 3
        for target in targets
        if not allowed(module, target)
    }
    assert sorted(leaks) == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles() -> None:
    assert _cycles(GRAPH) == []


def test_modules_and_functions_stay_small() -> None:
    too_long = []
    for module, path in MODULES.items():
        source = path.read_text()
        lines = len(source.splitlines())
        if lines > MAX_MODULE_LINES:
            too_long.append(f"{module}: {lines} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{module}.{node.name}: {length} lines")
    assert too_long == []


def _code_strings(path: Path) -> list[str]:
    """String constants of a module that are not docstrings."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_backend_tools_and_files_are_handled_only_in_hypervisors() -> None:
    backend_only = ("libvirt", "libvirt_qemu", "vboxapi", "hypervisors.vmware.vmx", "hypervisors.vmware.vmsd")
    offenders = []
    for module, path in MODULES.items():
        if layer(module) == 0:
            continue
        for target in GRAPH[module]:
            if within(target, "hypervisors.vmware", "hypervisors.libvirt", "hypervisors.virtualbox"):
                offenders.append(f"{module} imports {target}")
        offenders += [f"{module} imports {root}" for root in imported_roots(path) if root in backend_only]
        for text in _code_strings(path):
            if text == "virsh" or text.startswith("virsh ") or text.endswith((".vmx", ".vmsd")):
                offenders.append(f"{module} handles {text!r}")
    assert offenders == []


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
    modules = [m for m in MODULES if not m.startswith("ui") and not m.endswith("__main__")]
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
