"""bench/cli: what the `opennsps` command costs before it does anything.

CPU (user + system) of `opennsps --help` and of `opennsps config check` on the example
configuration, each the median of several runs in a child process with the bytecode
cache in use (as an installed package has it), beside the same interpreter doing nothing
(`python -c pass`) measured in the same run. Target: under
0.5 s of CPU for `--help`, on this machine.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.common import REPO, write_result

RUNS = int(os.environ.get("BENCH_CLI_RUNS", "7"))
HELP_TARGET_SECONDS = 0.5
OPENNSPS = [sys.executable, "-m", "opennsps.cli"]


# As an installed OpenNSPS runs: with its modules' bytecode cached (pip compiles it at
# install; a development shell may set PYTHONDONTWRITEBYTECODE, which makes every start
# compile every module again). One untimed run writes the cache.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def cpu_seconds(command: list[str]) -> float:
    """The median CPU time of the command in a child process over RUNS runs."""
    subprocess.run(command, cwd=REPO, env=CHILD_ENV, capture_output=True, check=True, timeout=120)
    samples = []
    for _ in range(RUNS):
        before = os.times()
        subprocess.run(
            command, cwd=REPO, env=CHILD_ENV, capture_output=True, check=True, timeout=120
        )
        after = os.times()
        used = (after.children_user - before.children_user) + (
            after.children_system - before.children_system
        )
        samples.append(used)
    return round(statistics.median(samples), 3)


def run() -> dict[str, Any]:
    example = str(Path(REPO) / "opennsps.example.yaml")
    baseline = cpu_seconds([sys.executable, "-c", "pass"])
    figures = {
        "runs": RUNS,
        "baseline_python_seconds": baseline,
        "help_seconds": cpu_seconds([*OPENNSPS, "--help"]),
        "config_check_seconds": cpu_seconds([*OPENNSPS, "config", "check", example]),
        "help_target_seconds": HELP_TARGET_SECONDS,
    }
    figures["help_over_baseline"] = round(figures["help_seconds"] / max(baseline, 1e-3), 1)
    figures["help_within_target"] = figures["help_seconds"] < HELP_TARGET_SECONDS
    for key, value in figures.items():
        print(f"  {key}: {value}")
    print(f"  written to {write_result('cli', figures)}")
    return figures


if __name__ == "__main__":
    run()
