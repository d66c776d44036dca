"""What importing a module costs: cumulative import time and modules loaded, per module, in fresh interpreters.

Run: `.venv/bin/python bench/import_cost.py [--runs 7] [--root DIR ...] [MODULE ...]`

Each module is imported `--runs` times with `python -X importtime -c "import MODULE"`, the runs of every root
interleaved so that a busy machine slows them alike. Printed per root and module: the median and the lowest
cumulative microseconds of the module's own line (its import, everything it pulled in included), and how many
modules that import loaded (lines of the importtime report). Several `--root` (checkouts of two commits) compare
a change, as issue 18's settings layering did (core.settings stopped loading the alerting channels).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODULES = ("core.settings", "agent.runtime", "server.app", "cli.main")


def import_once(root: Path, module: str) -> tuple[int, int]:
    """(cumulative µs of `module`'s own line, modules loaded) of one fresh `import module` under `root`."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    report = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], cwd=root, env=env,
                            capture_output=True, text=True, check=True).stderr
    lines = [line for line in report.splitlines() if line.startswith("import time:") and "|" in line][1:]
    own = next(line for line in reversed(lines) if line.split("|")[2].strip() == module)
    return int(own.split("|")[1]), len(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", default=list(DEFAULT_MODULES))
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--root", type=Path, action="append", help="checkout to import from (default: this one)")
    args = parser.parse_args()
    roots: list[Path] = args.root or [ROOT]
    times: dict[tuple[Path, str], list[int]] = {}
    loaded: dict[tuple[Path, str], int] = {}
    for _ in range(args.runs):
        for module in args.modules:
            for root in roots:
                try:
                    micros, count = import_once(root, module)
                except subprocess.CalledProcessError:
                    continue  # the module does not exist in that checkout
                times.setdefault((root, module), []).append(micros)
                loaded[(root, module)] = count
    for (root, module), values in times.items():
        print(f"{str(root):<28} {module:<18} median {statistics.median(values) / 1000:8.1f} ms   "
              f"min {min(values) / 1000:8.1f} ms   modules {loaded[(root, module)]:5d}   runs {len(values)}")


if __name__ == "__main__":
    main()
