"""`make bench`: run every benchmark of the project and print a summary table."""

from __future__ import annotations

from bench import cli, execution_log, ingest, outage, pipeline, realistic, sandbox, scaleout

BENCHMARKS = {
    "cli": cli.run,
    "ingest": ingest.run,
    "sandbox": sandbox.run,
    "pipeline": pipeline.run,
    "outage": outage.run,
    "scaleout": scaleout.run,
    "realistic": realistic.run,
    "execution_log": execution_log.run,
}


def main() -> None:
    for name, run in BENCHMARKS.items():
        print(f"== bench/{name}")
        run()


if __name__ == "__main__":
    main()
