"""Put the simulated ``VBoxManage`` and ``vmrun`` on a PATH, as executables, for tests and demos."""

from __future__ import annotations

import sys
from pathlib import Path

SIMULATORS = Path(__file__).resolve().parent
PYTHONPATH_DIR = SIMULATORS / "pythonpath"  # holds the simulated ``vboxapi`` package


def _script(module: str) -> str:
    return (
        f"#!{sys.executable}\n"
        "import sys\n"
        f"sys.path.insert(0, {str(SIMULATORS.parent)!r})\n"
        f"from simulators.{module} import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )


def install(bin_dir: Path) -> Path:
    """Write ``VBoxManage`` and ``vmrun`` into ``bin_dir``; return it (prepend it to PATH)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, module in (("VBoxManage", "vboxmanage"), ("vmrun", "vmrun")):
        path = bin_dir / name
        path.write_text(_script(module))
        path.chmod(0o755)
    return bin_dir
