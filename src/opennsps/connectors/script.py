"""Delivering to a local script: the NSPS Event JSON on its stdin.

The exit code decides the outcome:
- 0: delivered (stdout `{"status": "IN_PROGRESS"}` means: waiting for an asynchronous status);
- 65 (EX_DATAERR): rejected, the event can never succeed (not retried);
- any other code, being killed, or running past the timeout: retried.
stdout and stderr are kept (bounded) with the attempt; the trace ids are passed in the
environment as OPENNSPS_REQUEST_ID and OPENNSPS_UNIQUE_ID.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Any

import orjson

from opennsps.connectors.base import EXCERPT_BYTES, AttemptResult
from opennsps.domain.outcomes import Outcome, OutcomeKind

EXIT_REJECTED = 65


@dataclass(frozen=True)
class ScriptConnectorSettings:
    command: tuple[str, ...]
    timeout: float = 60.0
    working_directory: str | None = None


class ScriptConnector:
    def __init__(self, settings: ScriptConnectorSettings) -> None:
        if not settings.command:
            raise ValueError("a script handler needs a command")
        self.settings = settings

    async def close(self) -> None:
        return None

    async def deliver(
        self, event: dict[str, Any], *, request_id: str | None, unique_id: str | None
    ) -> AttemptResult:
        started = time.perf_counter()
        environment = {
            **os.environ,
            "OPENNSPS_REQUEST_ID": request_id or "",
            "OPENNSPS_UNIQUE_ID": unique_id or "",
        }
        try:
            process = await asyncio.create_subprocess_exec(
                *self.settings.command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=environment,
                cwd=self.settings.working_directory,
            )
        except OSError as exc:
            return _result(started, None, b"", f"cannot start {self.settings.command[0]}: {exc}")
        try:
            stdout, stderr = await asyncio.wait_for(
                process.communicate(orjson.dumps(event)), timeout=self.settings.timeout
            )
        except TimeoutError:
            process.kill()
            await process.wait()
            return _result(started, None, b"", f"killed after {self.settings.timeout:g} s")
        code = process.returncode
        assert code is not None
        detail = stderr[:EXCERPT_BYTES].decode("utf-8", errors="replace").strip()
        if code == 0:
            waiting = _says_in_progress(stdout)
            outcome = Outcome(
                OutcomeKind.WAITING if waiting else OutcomeKind.DELIVERED,
                "accepted; waiting for an asynchronous status" if waiting else "exit 0",
            )
            return _result(started, code, stdout, None, outcome)
        if code == EXIT_REJECTED:
            reason = f"exit {code} (rejected)" + (f": {detail}" if detail else "")
            return _result(started, code, stdout, reason, Outcome(OutcomeKind.REJECTED, reason))
        reason = f"exit {code}" + (f": {detail}" if detail else "")
        return _result(started, code, stdout, reason)


def _says_in_progress(stdout: bytes) -> bool:
    try:
        answer = orjson.loads(stdout) if stdout.strip() else None
    except orjson.JSONDecodeError:
        return False
    return isinstance(answer, dict) and str(answer.get("status", "")).upper() == "IN_PROGRESS"


def _result(
    started: float,
    code: int | None,
    stdout: bytes,
    error: str | None,
    outcome: Outcome | None = None,
) -> AttemptResult:
    chosen = outcome or Outcome(OutcomeKind.RETRY, error or "failed")
    return AttemptResult(
        chosen,
        code,
        stdout[:EXCERPT_BYTES].decode("utf-8", errors="replace"),
        error,
        (time.perf_counter() - started) * 1000,
    )
