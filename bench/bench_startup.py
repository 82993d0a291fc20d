"""Benchmark: how long `vml` takes to start, as a ratio against `python -c pass` in the same run.

Each command is run --runs times in a fresh interpreter; the best and the median wall times are
printed with their ratio to the bare interpreter's. The target is under 150 ms for `vml --version`
and `vml --help`.

    python bench/bench_startup.py [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = (["--version"], ["--help"], ["state", "--help"], ["appliance", "--help"], ["log", "--help"])
TARGET_S = 0.150


def wall_times(argv: list[str], runs: int) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    bare = wall_times([sys.executable, "-c", "pass"], args.runs)
    base_best, base_median = min(bare), statistics.median(bare)
    print(f"{'python -c pass':<24} best {base_best * 1000:6.1f} ms  median {base_median * 1000:6.1f} ms")
    for words in COMMANDS:
        times = wall_times([sys.executable, "-m", "vmlog.cli", *words], args.runs)
        best, median = min(times), statistics.median(times)
        verdict = "" if words[0] not in ("--version", "--help") else ("  ok" if best < TARGET_S else "  OVER 150 ms")
        print(
            f"{'vml ' + ' '.join(words):<24} best {best * 1000:6.1f} ms  median {median * 1000:6.1f} ms"
            f"  ratio {best / base_best:5.2f}x (median {median / base_median:5.2f}x){verdict}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
