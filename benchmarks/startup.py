"""Start-up time of every command: wall seconds of ``specflow <command> --help`` in a fresh
process (median of ``--repeat`` tries), beside ``python -c pass`` and ``specflow --help``.

    python benchmarks/startup.py              # every command, 3 tries each
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

from specflow.cli import COMMANDS


def seconds(argv: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    exe = shutil.which("specflow") or sys.exit("specflow is not on PATH: install it first")
    rows = [("python -c pass", [sys.executable, "-c", "pass"]),
            ("specflow --help", [exe, "--help"])]
    rows += [(f"specflow {name} --help", [exe, name, "--help"]) for name in COMMANDS]
    print(f"wall seconds, median of {args.repeat} fresh processes")
    worst = 0.0
    for label, argv in rows:
        s = seconds(argv, args.repeat)
        worst = max(worst, s) if label.startswith("specflow ") else worst
        print(f"{label:<40} {s:6.2f}")
    print(f"slowest command --help: {worst:.2f} s (goal < 1 s)")


if __name__ == "__main__":
    main()
