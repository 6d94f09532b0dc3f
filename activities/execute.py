"""The execution activity: approved steps, in order, each exactly once."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.executor import ExecutorUnavailable, executor_for
from activities.executor.base import runs_root
from activities.files import FileStepError, apply_file_step
from activities.redact import redact
from models.plan import FileStep, Step
from models.request import ExecuteInput, ExecuteOutput, StepResult

HEARTBEAT_EVERY_S = 2.0


async def _heartbeat(progress: dict[str, str]) -> None:
    while True:
        activity.heartbeat(dict(progress))
        await asyncio.sleep(HEARTBEAT_EVERY_S)


def _skipped(step: Step, key: str) -> StepResult:
    return StepResult(
        step_id=step.id, run_key=key, kind=step.type, ok=False, skipped=True, output="skipped: an earlier step failed"
    )


async def run_steps(inp: ExecuteInput) -> ExecuteOutput:
    workspace = Path(inp.workspace)
    settings = inp.settings.executor
    executor = executor_for(settings, workspace, inp.workflow_id)
    results: list[StepResult] = []
    networked = set(inp.network_steps)
    stop = False
    for step, key in zip(inp.steps, inp.run_keys, strict=True):
        if stop:
            results.append(_skipped(step, key))
            continue
        run_dir = runs_root(workspace, inp.workflow_id) / key
        if isinstance(step, FileStep):
            try:
                change = apply_file_step(step, workspace, run_dir)
                result = StepResult(
                    step_id=step.id, run_key=key, kind="file", ok=True, file_change=change, path=step.path
                )  # type: ignore[arg-type]
            except (FileStepError, OSError) as exc:
                result = StepResult(
                    step_id=step.id, run_key=key, kind="file", ok=False, output=str(exc), path=step.path
                )
        else:
            outcome = await executor.run(
                step.command,
                run_dir,
                step.timeout_s or settings.step_timeout_s,
                settings.output_cap_bytes,
                network=step.id in networked,
            )
            note = " [timed out: the step and its processes were killed]" if outcome.timed_out else ""
            note += " [interrupted: the host stopped while it ran]" if outcome.interrupted else ""
            result = StepResult(
                step_id=step.id,
                run_key=key,
                kind=step.type,
                ok=outcome.ok,
                exit_code=outcome.exit_code,
                output=redact(outcome.output) + note,
                duration_s=round(outcome.duration_s, 3),
                timed_out=outcome.timed_out,
            )
        results.append(result)
        # A failed verify step is evidence for the reviewer; a failed change stops the rest.
        stop = not result.ok and step.type != "verify"
    return ExecuteOutput(results=results)


@activity.defn
async def execute_steps(inp: ExecuteInput) -> ExecuteOutput:
    progress = {"workflow": inp.workflow_id}
    beat = asyncio.create_task(_heartbeat(progress))
    try:
        return await run_steps(inp)
    except ExecutorUnavailable as exc:
        raise ApplicationError(str(exc), type="ExecutorUnavailable", non_retryable=True) from None
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
