"""bench/sandbox: the PortaBilling stand-in at 1 M accounts.

1. Dataset generation of 1,000,000 accounts in its own process: wall time and peak
   resident memory (targets: < 60 s, < 2 GB).
2. Account/get_account_info over HTTP (form-encoded, one reused session, every call a
   different account) at fixed concurrency, beside a trivial endpoint of the same server
   (GET /sandbox/faults) measured in the same run.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from bench.common import REPO, free_port, load, write_result

ACCOUNTS = int(os.environ.get("BENCH_SANDBOX_ACCOUNTS", "1000000"))
FIRST_ACCOUNT = 100_001
CONCURRENCY = "32"
DURATION = "10"
GENERATION_SECONDS_TARGET = 60.0
MEMORY_MB_TARGET = 2048.0


def generate(path: Path) -> dict[str, Any]:
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "opennsps.cli",
            "sandbox",
            "generate",
            "--out",
            str(path),
            "--accounts",
            str(ACCOUNTS),
        ],
        check=True,
        cwd=REPO,
        capture_output=True,
        timeout=600,
    )
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "accounts": ACCOUNTS,
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(peak_mb, 1),
        "file_mb": round(path.stat().st_size / 2**20, 1),
    }


def serve(path: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "opennsps.cli",
            "sandbox",
            "serve",
            "--dataset",
            str(path),
            "--port",
            str(port),
            "--hss-port",
            "0",
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/sandbox/faults", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the sandbox did not start")


def measure_api(path: Path) -> dict[str, Any]:
    process, url = serve(path)
    try:
        login = httpx.post(
            f"{url}/rest/Session/login",
            data={"params": json.dumps({"login": "opennsps", "password": "sandbox-password"})},
        ).json()["session_id"]
        auth = quote(json.dumps({"session_id": login}, separators=(",", ":")), safe="")
        body = f"auth_info={auth}&params=%7B%22i_account%22%3A{{n}}%7D"
        form = "Content-Type: application/x-www-form-urlencoded"
        ceiling = load(
            f"{url}/sandbox/faults",
            "--method",
            "GET",
            "--concurrency",
            CONCURRENCY,
            "--duration",
            DURATION,
        )
        api = load(
            f"{url}/rest/Account/get_account_info",
            "--header",
            form,
            "--body",
            body,
            "--start",
            str(FIRST_ACCOUNT),
            "--concurrency",
            CONCURRENCY,
            "--duration",
            DURATION,
        )
        sample = httpx.post(
            f"{url}/rest/Account/get_account_info",
            data={
                "auth_info": json.dumps({"session_id": login}),
                "params": json.dumps({"i_account": FIRST_ACCOUNT + ACCOUNTS - 1}),
            },
        ).json()
        assert "account_info" in sample, sample
    finally:
        process.terminate()
        process.wait(30)
    return {"ceiling_trivial": ceiling, "get_account_info": api}


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="opennsps-bench-sandbox-") as folder:
        path = Path(folder) / "sandbox.db"
        generation = generate(path)
        api = measure_api(path)
    results = {
        "generation": generation,
        **api,
        "targets": {
            "generation_seconds": {
                "target": f"< {GENERATION_SECONDS_TARGET}",
                "measured": generation["seconds"],
                "met": generation["seconds"] < GENERATION_SECONDS_TARGET,
            },
            "generation_peak_rss_mb": {
                "target": f"< {MEMORY_MB_TARGET}",
                "measured": generation["peak_rss_mb"],
                "met": generation["peak_rss_mb"] < MEMORY_MB_TARGET,
            },
        },
    }
    path_written = write_result("sandbox", results)
    g = generation
    print(
        f"generation: {g['accounts']} accounts in {g['seconds']} s, "
        f"peak RSS {g['peak_rss_mb']} MB, file {g['file_mb']} MB"
    )
    for name in ("ceiling_trivial", "get_account_info"):
        r = results[name]
        print(
            f"{name:<18} {r['rps']:>8.0f} req/s  p50 {r['p50_ms']:.2f} ms  "
            f"p99 {r['p99_ms']:.2f} ms  statuses {r['statuses']}"
        )
    for name, target in results["targets"].items():
        print(
            f"target {name}: {target['measured']} (want {target['target']}) "
            + ("met" if target["met"] else "NOT met")
        )
    print(f"results: {path_written}")
    return results


if __name__ == "__main__":
    run()
