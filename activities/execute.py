"""The execution activity: approved steps, in order, each exactly once.

Every step's result is journalled (``result.json`` in its run directory, on the worker's machine,
out of the steps' reach) as soon as it is known, so a retried attempt skips what an earlier one
completed instead of applying it again."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from temporalio import activity

from activities.executor import Executor, ExecutorUnavailable, executor_for
from activities.executor.base import make_private, read_json, runs_root, unavailable_failure, write_json_atomic
from activities.files import FileStepError, apply_file_step
from activities.redact import redact
from models.config import data_dir
from models.plan import FileStep, Step
from models.request import ExecuteInput, ExecuteOutput, StepResult

HEARTBEAT_EVERY_S = 2.0
RESULT_FILE = "result.json"  # a step's result as the activity returned it: written by the worker only


async def _heartbeat(progress: dict[str, str]) -> None:
    while True:
        activity.heartbeat(dict(progress))
        await asyncio.sleep(HEARTBEAT_EVERY_S)


def _skipped(step: Step, key: str) -> StepResult:
    return StepResult(
        step_id=step.id, run_key=key, kind=step.type, ok=False, skipped=True, output="skipped: an earlier step failed"
    )


def _recorded(run_dir: Path) -> StepResult | None:
    data = read_json(run_dir / RESULT_FILE)
    return StepResult.model_validate(data) if data else None


async def _run_step(
    step: Step, key: str, run_dir: Path, inp: ExecuteInput, executor: Executor, network: bool
) -> StepResult:
    workspace = Path(inp.workspace)
    settings = inp.settings.executor
    if isinstance(step, FileStep):
        try:
            change = apply_file_step(step, workspace, run_dir)
            return StepResult(step_id=step.id, run_key=key, kind="file", ok=True, file_change=change, path=step.path)  # type: ignore[arg-type]
        except (FileStepError, OSError) as exc:
            return StepResult(step_id=step.id, run_key=key, kind="file", ok=False, output=str(exc), path=step.path)
    outcome = await executor.run(
        step.command, run_dir, step.timeout_s or settings.step_timeout_s, settings.output_cap_bytes, network=network
    )
    note = " [timed out: the step and its processes were killed]" if outcome.timed_out else ""
    note += " [interrupted: the host stopped while it ran]" if outcome.interrupted else ""
    return StepResult(
        step_id=step.id,
        run_key=key,
        kind=step.type,
        ok=outcome.ok,
        exit_code=outcome.exit_code,
        output=redact(outcome.output) + note,
        duration_s=round(outcome.duration_s, 3),
        timed_out=outcome.timed_out,
    )


async def run_steps(inp: ExecuteInput, progress: dict[str, str] | None = None) -> ExecuteOutput:
    workspace = Path(inp.workspace)
    data = data_dir(inp.settings)
    executor = executor_for(inp.settings.executor, workspace, inp.workflow_id, data)
    results: list[StepResult] = []
    networked = set(inp.network_steps)
    stop = False
    for step, key in zip(inp.steps, inp.run_keys, strict=True):
        if stop:
            results.append(_skipped(step, key))
            continue
        run_dir = make_private(runs_root(data, inp.workflow_id) / key)
        # Exactly once: a step an earlier attempt completed (file steps as much as commands) is
        # never applied again; its recorded result stands.
        result = _recorded(run_dir)
        if result is None:
            if progress is not None:
                progress["step"] = key
            result = await _run_step(step, key, run_dir, inp, executor, step.id in networked)
            write_json_atomic(run_dir / RESULT_FILE, result.model_dump())
        results.append(result)
        # A failed verify step is evidence for the reviewer; a failed change stops the rest.
        stop = not result.ok and step.type != "verify"
    return ExecuteOutput(results=results)


@activity.defn
async def execute_steps(inp: ExecuteInput) -> ExecuteOutput:
    progress = {"workflow": inp.workflow_id}
    beat = asyncio.create_task(_heartbeat(progress))
    try:
        return await run_steps(inp, progress)
    except ExecutorUnavailable as exc:
        raise unavailable_failure(exc) from None
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
