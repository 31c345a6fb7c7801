"""The local-script connector with real scripts."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from opennsps.connectors.base import AttemptResult
from opennsps.connectors.script import ScriptConnector, ScriptConnectorSettings
from opennsps.domain.outcomes import OutcomeKind

EVENT = {
    "event_id": "e-1",
    "data": {"event_type": "Subscriber/Created", "variables": {"i_account": 7}},
}


def run_script(tmp_path: Path, body: str, timeout: float = 10.0) -> AttemptResult:
    script = tmp_path / "handler.py"
    script.write_text(body)

    async def deliver() -> AttemptResult:
        connector = ScriptConnector(ScriptConnectorSettings((sys.executable, str(script)), timeout))
        return await connector.deliver(EVENT, request_id="trace-1", unique_id="unique-1")

    return asyncio.run(deliver())


def test_the_event_arrives_on_stdin_with_the_trace_ids(tmp_path: Path) -> None:
    seen = tmp_path / "seen.json"
    result = run_script(
        tmp_path,
        "import json, os, sys\n"
        f"open({str(seen)!r}, 'w').write(json.dumps({{'event': json.load(sys.stdin),"
        " 'ids': [os.environ['OPENNSPS_REQUEST_ID'], os.environ['OPENNSPS_UNIQUE_ID']]}))\n"
        "print('provisioned')\n",
    )
    assert result.outcome.kind is OutcomeKind.DELIVERED and result.status_code == 0
    assert result.response_excerpt.strip() == "provisioned"
    assert json.loads(seen.read_text()) == {"event": EVENT, "ids": ["trace-1", "unique-1"]}


def test_exit_codes_decide(tmp_path: Path) -> None:
    rejected = run_script(tmp_path, "import sys\nsys.stderr.write('no such IMSI')\nsys.exit(65)\n")
    assert (
        rejected.outcome.kind is OutcomeKind.REJECTED and "no such IMSI" in rejected.outcome.reason
    )
    failed = run_script(tmp_path, "import sys\nsys.exit(3)\n")
    assert failed.outcome.kind is OutcomeKind.RETRY and failed.status_code == 3
    waiting = run_script(tmp_path, 'print(\'{"status": "IN_PROGRESS"}\')\n')
    assert waiting.outcome.kind is OutcomeKind.WAITING


def test_a_hanging_script_is_killed_and_retried(tmp_path: Path) -> None:
    result = run_script(tmp_path, "import time\ntime.sleep(30)\n", timeout=0.5)
    assert result.outcome.kind is OutcomeKind.RETRY and "killed after 0.5 s" in (result.error or "")
    assert result.duration_ms < 5000


def test_a_missing_script_is_retried_with_a_reason() -> None:
    async def deliver() -> AttemptResult:
        connector = ScriptConnector(ScriptConnectorSettings(("/nonexistent/handler",)))
        return await connector.deliver(EVENT, request_id=None, unique_id=None)

    result = asyncio.run(deliver())
    assert result.outcome.kind is OutcomeKind.RETRY and "cannot start /nonexistent/handler" in (
        result.error or ""
    )
